#!/usr/bin/env python3
"""Convert glm5's BF16 bench model (`glm5 bench --write-bf16`) to a llama.cpp GGUF.

Used by compare_llama_cpp.sh. Two steps:

  view  MODEL VIEW   make VIEW, a folder llama.cpp's convert_hf_to_gguf.py accepts for the
                     random model in MODEL: model.safetensors symlinked, config.json copied (with
                     the keys below added when missing), and a synthetic byte-level BPE
                     tokenizer (tokenizer.json + tokenizer_config.json) of exactly vocab_size
                     tokens with GLM's special tokens (the random model has no tokenizer).
  convert LLAMA_DIR VIEW OUT.gguf
                     run LLAMA_DIR/convert_hf_to_gguf.py on VIEW (--outtype bf16), with one
                     patch: the synthetic tokenizer's pre-tokenizer hash is unknown to the
                     converter, which then stops ("BPE pre-tokenizer was not recognized"); it is
                     recorded as "glm4", llama.cpp's pre-tokenizer for GLM-4.5/4.7
                     conversions. llama-bench does not tokenize (it feeds random token ids).

Config keys: the converter stops without `architectures` ("Failed to detect model
architecture"; it picks its model class by it) and without `num_key_value_heads` (KeyError in
DeepseekV2Model.modify_tensors, which checks kv_b_proj's shape with it), and it reads
`norm_topk_prob` from the file only (absent: llama.cpp would not renormalize the top-k router
weights; GLM-5 sets true). transformers 4.57.6 (llama.cpp's pin) does not know glm_moe_dsa, so
the converter reads config.json as it is. `glm5 bench --write-bf16` writes all three (the
missing num_key_value_heads was a bug of ours: transformers' GlmMoeDsaConfig defaults it to a
fixed 64, not to num_attention_heads); `view` adds them to folders written before.
"""

import json
import sys
from pathlib import Path

GLM_SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
                "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]


def bytes_to_unicode():
    """GPT-2's byte -> printable character map (byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_tokenizer(folder: Path, vocab_size: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    base = list(bytes_to_unicode().values())
    n_merges = vocab_size - len(base) - len(GLM_SPECIALS)
    assert n_merges > 0, vocab_size
    vocab = {s: i for i, s in enumerate(base)}
    merges = []
    for a in base:  # pairs of byte symbols: every merge joins two tokens already in the vocab
        for b in base:
            if len(merges) == n_merges:
                break
            merges.append((a, b))
            vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in GLM_SPECIALS])
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "model_max_length": 16384, "clean_up_tokenization_spaces": False,
    }, indent=1) + "\n")


def make_view(model: Path, view: Path):
    view.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((model / "config.json").read_text())
    cfg.setdefault("architectures", ["GlmMoeDsaForCausalLM"])
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("norm_topk_prob", True)
    (view / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    for f in model.iterdir():
        if f.name.endswith(".safetensors") or f.name == "model.safetensors.index.json":
            link = view / f.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(f.resolve())
    write_tokenizer(view, int(cfg["vocab_size"]))


def convert(llama_dir: Path, view: Path, out: Path):
    sys.path.insert(0, str(llama_dir))
    sys.path.insert(1, str(llama_dir / "gguf-py"))
    import logging

    import conversion.base as base

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        # The synthetic tokenizer's hash is unknown: silence the converter's warning box, use glm4.
        log = logging.getLogger("hf-to-gguf")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            return "glm4"
        finally:
            log.setLevel(level)

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    import runpy
    sys.argv = ["convert_hf_to_gguf.py", str(view), "--outtype", "bf16", "--outfile", str(out)]
    runpy.run_path(str(llama_dir / "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "view":
        make_view(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "convert":
        convert(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        sys.exit(__doc__)
