#!/usr/bin/env python3
"""Train the GLM-5-style byte-level BPE tokenizers glm5 ships and tests against, with Hugging Face
`tokenizers` (PyPI) only: no torch, no network.

    python3 -m venv /tmp/venv-tok && /tmp/venv-tok/bin/pip install tokenizers==0.23.3
    /tmp/venv-tok/bin/python tools/reference/train_tokenizer.py            # writes both

  models/glm5-tiny/tokenizer.json, tokenizer_config.json
      vocabulary 4096 (4087 BPE tokens + 9 special tokens at the end, as GLM puts them), trained on
      the Python standard library's .py sources of this machine's CPython (tokenizer_corpus.
      stdlib_py_files: sorted, no site-packages, no test suites): the text the bundled model
      trains on.
  Tests/Fixtures/tokenizers/glm5-like-32k/tokenizer.json.zst
      vocabulary 32000, trained on the same sources plus the test corpus's other parts (prose, CJK,
      emoji, whitespace, unusual Unicode, byte-like text); `ignore_merges: true` (as Llama-3 /
      GLM-4-family files have it), committed zstd-compressed (glm5 reads .zst directly).

Both: no normalizer; pre-tokenizer Sequence[Split(GLM-4/5 regex, Isolated), ByteLevel(
add_prefix_space=false, use_regex=false)]; ByteLevel decoder; the special tokens <|endoftext|>,
[gMASK], <sop>, <|system|>, <|user|>, <|assistant|>, <|observation|>, <think>, </think>
(special, never normalized, never split). Training is single-threaded (RAYON_NUM_THREADS=1) and
deterministic: running it twice writes the same bytes (checked with --check).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

os.environ.setdefault("RAYON_NUM_THREADS", "1")

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
import tokenizers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_corpus  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# GLM-4.5 / GLM-5 tokenizer.json's Split pattern (cl100k / Llama-3 style).
GLM_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
            "<|observation|>", "<think>", "</think>"]


def stdlib_texts():
    for path in tokenizer_corpus.stdlib_py_files():
        text = tokenizer_corpus.read_utf8(path)
        if text is not None:
            yield text


def train(texts, vocab_size, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIALS), min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(SPECIALS)  # ids vocab_size - 9 ..< vocab_size, GLM's layout
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


# GLM's turns for plain text (what `glm5 chat` uses, Sources/GLM5Engine/ChatFormat.swift): the
# bundled model's template. transformers' apply_chat_template renders the same text.
GLM_CHAT_TEMPLATE = (
    "[gMASK]<sop>{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{% elif m['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "\n{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def config_json(max_length, chat_template=None):
    extra = {"chat_template": chat_template} if chat_template else {}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        "unk_token": None,
        "padding_side": "left",
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_length,
        "additional_special_tokens": SPECIALS[1:],
        **extra,
    }


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tiny():
    tok = train(list(stdlib_texts()), 4096)
    out = os.path.join(ROOT, "models", "glm5-tiny")
    write(os.path.join(out, "tokenizer.json"), tok.to_str(pretty=True).encode() + b"\n")
    write(os.path.join(out, "tokenizer_config.json"),
          (json.dumps(config_json(4096, GLM_CHAT_TEMPLATE), indent=2, ensure_ascii=False) + "\n").encode())
    return [os.path.join(out, "tokenizer.json"), os.path.join(out, "tokenizer_config.json")]


def like32k():
    text = tokenizer_corpus.build()
    # The corpus's code part is already stdlib; add the other parts twice so they get merges too.
    cut = text.find("\n\n", 420_000)
    texts = list(stdlib_texts()) + [text[cut:]] * 2
    tok = train(texts, 32000, ignore_merges=True)
    out = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers", "glm5-like-32k")
    data = tok.to_str(pretty=False).encode() + b"\n"
    path = os.path.join(out, "tokenizer.json.zst")
    os.makedirs(out, exist_ok=True)
    subprocess.run(["zstd", "-q", "-19", "-f", f"--stream-size={len(data)}", "-o", path], input=data, check=True)
    write(os.path.join(out, "tokenizer_config.json"),
          (json.dumps(config_json(32000), indent=2, ensure_ascii=False) + "\n").encode())
    return [path, os.path.join(out, "tokenizer_config.json")]


def digest(paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["tiny", "32k"])
    ap.add_argument("--check", action="store_true", help="train twice and compare the bytes")
    args = ap.parse_args()
    jobs = [j for j in (("tiny", tiny), ("32k", like32k)) if args.only in (None, j[0])]
    for name, job in jobs:
        paths = job()
        d = digest(paths)
        if args.check and digest(job()) != d:
            sys.exit(f"{name}: training is not deterministic")
        print(f"{name}: {', '.join(os.path.relpath(p, ROOT) for p in paths)} sha256 {d[:16]} "
              f"(tokenizers {tokenizers.__version__}, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
