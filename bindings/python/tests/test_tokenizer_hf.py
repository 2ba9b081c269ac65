"""glm5's tokenizer against Hugging Face `tokenizers` (PyPI), id for id.

On the test corpus (Tests/Fixtures/tokenizers/corpus.txt.zst, 1.6 MB of code, prose, CJK, emoji,
whitespace runs, unusual Unicode and byte-like text; tools/reference/tokenizer_corpus.py) every
line, every paragraph and the whole corpus in large chunks are encoded by both, with special
tokens inserted into some texts, with and without special-token parsing; the ids must be
identical and glm5's decode must give the text back (and equal HF's decode). Tokenizers: the
bundled model's (models/glm5-tiny), the 32 000-token GLM-5-like one, and variants of the bundled
one made here with `tokenizers` itself (ignore_merges, GPT-2-style ByteLevel regex with prefix
spaces, non-special / single_word / lstrip / rstrip / normalized added tokens, every Split
behavior, invert, Digits, NFC), and, with a merge-free model that shows every pre-token boundary in
its ids, the GLM-5, GPT-2 and DeepSeek-V3 pre-tokenizers boundary by boundary.

Skipped only when `tokenizers` cannot be imported (`make check` installs it).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import glm5

from conftest import REPO

hf = pytest.importorskip("tokenizers", reason="HF tokenizers is not installed (pip install tokenizers); "
                         "make check installs it")

FIX = REPO / "Tests" / "Fixtures" / "tokenizers"
TINY = REPO / "models" / "glm5-tiny"
SPECIALS = ["<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
            "<|observation|>", "<think>", "</think>"]


def unzstd(path: Path) -> bytes:
    try:
        import zstandard

        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    except ImportError:
        pass
    if shutil.which("zstd"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    raise RuntimeError(f"cannot decompress {path}: install the `zstandard` package or the zstd command")


@pytest.fixture(scope="module")
def corpus() -> str:
    return unzstd(FIX / "corpus.txt.zst").decode("utf-8")


@pytest.fixture(scope="module")
def like32k(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("glm5-like-32k")
    (d / "tokenizer.json").write_bytes(unzstd(FIX / "glm5-like-32k" / "tokenizer.json.zst"))
    shutil.copy(FIX / "glm5-like-32k" / "tokenizer_config.json", d / "tokenizer_config.json")
    return d


def with_specials(texts, seed=5):
    """Every 5th text with special tokens inserted at random scalar positions."""
    rng = random.Random(seed)
    out = []
    for i, t in enumerate(texts):
        if i % 5 == 0 and t:
            for _ in range(rng.randint(1, 3)):
                k = rng.randint(0, len(t))
                t = t[:k] + rng.choice(SPECIALS) + t[k:]
        out.append(t)
    return out


def texts_of(corpus: str, chunk=65536):
    lines = corpus.split("\n")
    paragraphs = corpus.split("\n\n")
    chunks = [corpus[i:i + chunk] for i in range(0, len(corpus), chunk)]
    return {"lines": lines, "paragraphs": paragraphs, "chunks": chunks}


def compare(tok: glm5.Tokenizer, ref, texts, parse_special: bool, what: str, roundtrip=True):
    """Encode every text with both; assert identical ids and exact round trips."""
    ref.encode_special_tokens = not parse_special
    expected = [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)]
    bad = []
    n_ids = 0
    for text, want in zip(texts, expected):
        got = tok.encode(text, parse_special=parse_special)
        n_ids += len(got)
        if got.tolist() != want:
            k = next((i for i, (a, b) in enumerate(zip(got.tolist(), want)) if a != b), min(len(got), len(want)))
            bad.append(f"{text[:120]!r}: first difference at id {k}: glm5 {got.tolist()[k:k + 6]} HF {want[k:k + 6]}")
            continue
        if roundtrip:
            back = tok.decode(got)
            if back != text:
                bad.append(f"{text[:120]!r}: decodes to {back[:120]!r}")
    assert not bad, f"{what} (parse_special={parse_special}): {len(bad)} of {len(texts)} texts differ:\n" + "\n".join(bad[:8])
    return n_ids


def check_tokenizer(folder_or_file, corpus: str, kinds=("lines", "paragraphs", "chunks"), limit=None):
    path = Path(folder_or_file)
    file = path / "tokenizer.json" if path.is_dir() else path
    ref = hf.Tokenizer.from_file(str(file))
    tok = glm5.Tokenizer(path)
    assert tok.n_ids == ref.get_vocab_size(with_added_tokens=True)
    total = 0
    for kind, texts in texts_of(corpus).items():
        if kind not in kinds:
            continue
        texts = texts[:limit] if limit else texts
        total += compare(tok, ref, texts, True, f"{path.name} {kind}")
        sp = with_specials(texts)
        total += compare(tok, ref, sp, True, f"{path.name} {kind} with special tokens")
        total += compare(tok, ref, sp, False, f"{path.name} {kind} with special tokens as text")
    return tok, ref, total


def test_corpus_is_big_and_mixed(corpus):
    assert len(corpus.encode()) >= 1_000_000
    for needle in ["def ", "the ", "的", "👨\u200d👩", "\U0001F3FD", "\r\n", "\t\t", "\u0301", "٣", "ℝ", "\ufffd", "\\xff"]:
        assert needle in corpus, needle


def test_bundled_tokenizer_equals_hf(corpus):
    tok, ref, n = check_tokenizer(TINY, corpus)
    assert n > 1_000_000 and tok.eos_id == ref.token_to_id("<|endoftext|>") == 4087


def test_glm5_like_32k_equals_hf(corpus, like32k):
    tok, ref, n = check_tokenizer(like32k, corpus)
    assert tok.n_ids == 32000 and n > 500_000
    # glm5 reads the compressed file as committed.
    z = glm5.Tokenizer(FIX / "glm5-like-32k" / "tokenizer.json.zst")
    assert z.encode(corpus[:20000]).tolist() == tok.encode(corpus[:20000]).tolist()


def test_decode_matches_hf_with_skip_special(corpus):
    ref = hf.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    tok = glm5.Tokenizer(TINY)
    for text in with_specials(corpus.split("\n\n")[:400]):
        ids = tok.encode(text)
        assert tok.decode(ids, skip_special_tokens=True) == ref.decode(ids.tolist(), skip_special_tokens=True)
        assert tok.decode(ids) == ref.decode(ids.tolist(), skip_special_tokens=False) == text


def test_streaming_decode_holds_back_partial_utf8(corpus):
    tok = glm5.Tokenizer(TINY)
    texts = [t for t in corpus.split("\n") if any(ord(c) > 0x7F for c in t)][:300]
    assert texts
    for text in texts:
        ids = tok.encode(text)
        s = tok.stream()
        chunks = [s.push(int(i)) for i in ids]
        rest = s.finish()
        assert "".join(chunks) + rest == text
        assert rest == ""
        assert all("\ufffd" not in c for c in chunks) or "\ufffd" in text
    # bytes of an emoji split over tokens: nothing is emitted until the sequence is complete
    ids = tok.encode("😀")
    assert len(ids) > 1
    s = tok.stream()
    assert [s.push(int(i)) for i in ids[:-1]] == [""] * (len(ids) - 1)
    assert s.push(int(ids[-1])) == "😀"
    s2 = tok.stream()
    s2.push(int(ids[0]))
    assert s2.finish() == "\ufffd"


def write_variant(tmp_path: Path, name: str, edit) -> Path:
    data = json.loads((TINY / "tokenizer.json").read_text())
    edit(data)
    d = tmp_path / name
    d.mkdir()
    (d / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    return d


GPT2_BYTELEVEL = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern}, "behavior": behavior, "invert": invert}


def seq(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps) + [{"type": "ByteLevel", "add_prefix_space": False,
                                                                "trim_offsets": True, "use_regex": False}]}


VARIANTS = {
    "ignore_merges": lambda d: d["model"].update(ignore_merges=True),
    "legacy_merges": lambda d: d["model"].update(merges=[" ".join(m) for m in d["model"]["merges"]]),
    "empty_affixes": lambda d: d["model"].update(continuing_subword_prefix="", end_of_word_suffix=""),
    "gpt2_bytelevel": lambda d: d.update(pre_tokenizer=GPT2_BYTELEVEL),
    "removed": lambda d: d.update(pre_tokenizer=seq(split(r"\s+", "Removed"))),
    "merged_with_previous": lambda d: d.update(pre_tokenizer=seq(split(r"[.,;:!?]", "MergedWithPrevious"))),
    "merged_with_next": lambda d: d.update(pre_tokenizer=seq(split(" ", "MergedWithNext", regex=False))),
    "contiguous_invert": lambda d: d.update(pre_tokenizer=seq(split(r"\p{L}+", "Contiguous", invert=True))),
    "digits": lambda d: d.update(pre_tokenizer=seq({"type": "Digits", "individual_digits": True},
                                                     split(r"(?i:'s|'t)|\p{L}+|[^\s\p{L}]+|\s+", "Isolated"))),
    "lazy_possessive_lookahead": lambda d: d.update(pre_tokenizer=seq(split(
        r"[A-Z]?[a-z]+?(?=[A-Z\s]|$)|\d++|\d{2,4}?|[^\S\n]+(?!\S)|\s|(?>\p{P}+)|.", "Isolated"))),
    "no_decoder": lambda d: d.update(decoder=None),
    "nfc": lambda d: d.update(normalizer={"type": "Sequence", "normalizers": [{"type": "NFC"}]}),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_equal_hf(name, corpus, tmp_path):
    d = write_variant(tmp_path, name, VARIANTS[name])
    ref = hf.Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = glm5.Tokenizer(d)
    lines = corpus.split("\n")
    texts = with_specials(lines[::7][:3000] + lines[-3000:])
    roundtrip = name not in ("removed", "no_decoder", "gpt2_bytelevel", "nfc")  # not the text back (nor in HF)
    compare(tok, ref, texts, True, name, roundtrip=roundtrip)
    compare(tok, ref, texts, False, name, roundtrip=roundtrip)
    if not roundtrip:
        for t in texts[:500]:
            ids = tok.encode(t)
            assert tok.decode(ids) == ref.decode(ids.tolist(), skip_special_tokens=False)


def boundary_model(d):
    """A BPE model without merges whose ids show every pre-token boundary: each byte-level
    character has an id, and another with the end_of_word_suffix for a word's last character."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab.update({c + "</w>": len(alphabet) + i for i, c in enumerate(alphabet)})
    for t in d["added_tokens"]:
        t["id"] += 2 * len(alphabet) - 4087
    d["model"] = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []}


BOUNDARY_PRE = {
    "glm5": None,  # the file's own: Split(GLM-4/5 regex) + ByteLevel
    "gpt2_bytelevel": GPT2_BYTELEVEL,
    "digits": seq({"type": "Digits", "individual_digits": True}),
    "digit_runs": seq({"type": "Digits", "individual_digits": False}),
    "removed": seq(split(r"\s+", "Removed")),
    "merged_with_previous": seq(split(r"[.,;:!?]", "MergedWithPrevious")),
    "merged_with_next": seq(split(" ", "MergedWithNext", regex=False)),
    "contiguous_invert": seq(split(r"\p{L}+", "Contiguous", invert=True)),
    # DeepSeek-V3's tokenizer.json: three Splits (the last with literal CR and LF in its classes).
    "deepseek_v3": seq(
        split(r"\p{N}{1,3}", "Isolated"),
        split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+", "Isolated"),
        split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
              "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+", "Isolated")),
}


# Scalars assigned in Unicode 13-16: glm5 classifies with Swift's tables, HF with Oniguruma's.
RECENT_UNICODE = ["\U00010E80", "\U00010570", "\u0870", "\U00031350", "\U00011F04", "\U0002EBF0", "\U00010D50",
                  "\u1c89", "\U00010D40", "\U0001E5D0", "\U0001FAE8", "\U0001F6DC", "\u0CF3", "\U00011B00"]
RECENT_TEXTS = [f"{a}{c}{b}" for c in RECENT_UNICODE for a, b in [("a", "b"), (" ", " "), ("1", "2"), ("'", "s")]]


@pytest.mark.parametrize("pre", sorted(BOUNDARY_PRE))
def test_pretokenizer_splits_equal_hf(pre, corpus, tmp_path):
    """Every pre-token boundary equal to HF's (Oniguruma's) on every line and paragraph: with
    merges, a different split often gives the same ids; here it never does."""
    def edit(d):
        boundary_model(d)
        if BOUNDARY_PRE[pre] is not None:
            d["pre_tokenizer"] = BOUNDARY_PRE[pre]
        if pre == "deepseek_v3":
            d["normalizer"] = {"type": "Sequence", "normalizers": []}
    d = write_variant(tmp_path, "boundaries", edit)
    ref = hf.Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = glm5.Tokenizer(d)
    texts = texts_of(corpus)
    compare(tok, ref, texts["lines"] + texts["paragraphs"] + RECENT_TEXTS, True, f"boundaries {pre}", roundtrip=False)
    compare(tok, ref, with_specials(texts["lines"]), False, f"boundaries {pre}", roundtrip=False)


def test_added_token_options_equal_hf(corpus, tmp_path):
    ref = hf.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    A = hf.AddedToken
    ref.add_tokens([
        A("return", single_word=True, normalized=False),
        A("self", single_word=True, normalized=True),
        A("<tool>", lstrip=True, rstrip=True, normalized=False),
        A("import", lstrip=True, normalized=True),
        A("== ", rstrip=True, normalized=False),
        A("的", normalized=False),
        A("\U0001F3FD", normalized=False),
        A("def f", normalized=True),
    ])
    ref.add_special_tokens([A("<|tool_call|>", lstrip=True, rstrip=True), A("[MASK]", single_word=True)])
    d = tmp_path / "added"
    d.mkdir()
    ref.save(str(d / "tokenizer.json"))
    ref = hf.Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = glm5.Tokenizer(d)
    lines = corpus.split("\n")
    extra = ["x <tool>  y", "  <tool>\n\n<tool>z", "a [MASK] b", "a[MASK]b", "  <|tool_call|>  hi",
             "returned return (return) self.x myself", "import os\n    import sys", "a ==  b", "的的 的"]
    texts = with_specials(extra + lines[::5][:5000])
    compare(tok, ref, texts, True, "added tokens", roundtrip=False)
    compare(tok, ref, texts, False, "added tokens", roundtrip=False)
    for t in texts[:2000]:
        ids = tok.encode(t)
        assert tok.decode(ids) == ref.decode(ids.tolist(), skip_special_tokens=False)


def test_nfc_with_normalized_added_tokens_equal_hf(corpus, tmp_path):
    """NFC composes before pre-tokenization; normalized added tokens match in their NFC form."""
    ref = hf.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    ref.normalizer = hf.normalizers.NFC()
    A = hf.AddedToken
    ref.add_tokens([A("cafe\u0301", normalized=True), A("Ame\u0301lie", normalized=False), A("Å", normalized=True)])
    d = tmp_path / "nfc"
    d.mkdir()
    ref.save(str(d / "tokenizer.json"))
    ref = hf.Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = glm5.Tokenizer(d)
    lines = corpus.split("\n")
    extra = ["café cafe\u0301 Ame\u0301lie Amélie A\u030a Å Å", "e\u0301\u0301 \u0301x ﬁ ǅ 가각 \u1100\u1161\u11a8"]
    texts = with_specials(extra + [t for t in lines if any(ord(c) > 0x2FF for c in t)][:6000])
    compare(tok, ref, texts, True, "nfc", roundtrip=False)
    compare(tok, ref, texts, False, "nfc", roundtrip=False)
    for t in texts[:2000]:
        ids = tok.encode(t)
        assert tok.decode(ids) == ref.decode(ids.tolist(), skip_special_tokens=False)


def test_model_tokenizer_and_errors(tmp_path):
    fixture = REPO / "Tests" / "Fixtures" / "tiny-dsa"
    with glm5.Model(fixture) as m:
        assert m.tokenizer is None  # the fixture has no tokenizer.json: tokens in, tokens out
    d = tmp_path / "model"
    shutil.copytree(fixture, d)
    shutil.copy(TINY / "tokenizer.json", d / "tokenizer.json")
    shutil.copy(TINY / "tokenizer_config.json", d / "tokenizer_config.json")
    with glm5.Model(d) as m:
        t = m.tokenizer
    assert t is not None and t.eos_id == 4087  # the handle outlives the model
    assert t.decode(t.encode("print('hi')")) == "print('hi')"
    assert t.token_to_piece(t.encode(" x")[0]) == b" x"
    assert t.id_to_token(4091) == "<|user|>" and t.is_special(4091) and t.token_to_id("<|user|>") == 4091

    bad = write_variant(tmp_path, "bad", lambda d: d["model"]["merges"].__setitem__(17, ["no-such-token", "x"]))
    with pytest.raises(glm5.BadFormatError, match=r"model\.merges\[17\]"):
        glm5.Tokenizer(bad)
    unsup = write_variant(tmp_path, "unsup", lambda d: d.update(normalizer={"type": "NFKC"}))
    with pytest.raises(glm5.UnsupportedError, match=r"normalizer"):
        glm5.Tokenizer(unsup)
    lb = write_variant(tmp_path, "lookbehind", lambda d: d.update(pre_tokenizer=seq(split(r"(?<=a)b", "Isolated"))))
    with pytest.raises(glm5.UnsupportedError, match=r"lookbehind"):
        glm5.Tokenizer(lb)
    with pytest.raises(glm5.InvalidArgumentError, match=r"UTF-8"):
        t.encode(b"abc\xff")
    with pytest.raises(glm5.InvalidArgumentError, match=r"ids\[1\]"):
        t.decode([1, 99999])
    with pytest.raises(glm5.IoError):
        glm5.Tokenizer(tmp_path / "nothing-here")
