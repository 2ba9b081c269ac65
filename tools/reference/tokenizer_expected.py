#!/usr/bin/env python3
"""Write Tests/Fixtures/tokenizers/expected.json: ids HF `tokenizers` gives for hand-picked strings,
for both committed tokenizers, with and without special-token parsing, and their decodes. The
Swift suite (TokenizerTests.swift) checks glm5 against it without Python.

    /tmp/venv-tok/bin/python tools/reference/tokenizer_expected.py
"""

import json
import subprocess
from pathlib import Path

import tokenizers

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "tokenizers" / "expected.json"

STRINGS = [
    "", " ", "  ", "\n", "\r\n", "\t", "a", "hello world", "Hello, World!",
    "def f(x):\n    return x * 2\n", "    if a == b:\r\n\t\tpass  \n\n\n",
    "I'm sure we'll see they've gone, DON'T YOU'LL 'ſ 'S", "IT'ſ it'ſtuff x'Ss a'Kelvin",
    "12345678901 3.14159 1,000,000 ٣٤٥ ０１２ 𝟎𝟏𝟐",
    "你好，世界！这是一个测试。", "日本語のテキスト、カタカナ。", "한국어 텍스트",
    "emoji 😀👍🏽👨\u200d👩\u200d👧\u200d👦🏳️\u200d🌈🇨🇳 #️⃣", "e\u0301 \u0301 Z\u0351\u036b",
    "\u00a0nbsp\u3000ideo\u2028line\u0085nel\u200bzw", "ℕ ℝ ™ K Å ½ Ⅻ", "\x00\x01\x7f\x80\ufffd\ufeff",
    "<|user|>hi<|assistant|><think>x</think>", "[gMASK]<sop><|system|>sys<|user|>u<|assistant|>",
    "<|endoftext|><|endoftext|>", "<|user", "a<|observation|>b", "          x", "x          ",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "https://example.com/path?q=1&r=2#frag", "λx. x + 1 → ∀ε>0 ∃δ", "\\xff\\xfe",
]


def load(path: Path) -> tokenizers.Tokenizer:
    data = path.read_bytes()
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return tokenizers.Tokenizer.from_str(data.decode())


def main():
    out = {"tokenizers_version": tokenizers.__version__, "cases": []}
    for rel in ["models/glm5-tiny/tokenizer.json", "Tests/Fixtures/tokenizers/glm5-like-32k/tokenizer.json.zst"]:
        tok = load(REPO / rel)
        for s in STRINGS:
            for parse_special in (True, False):
                tok.encode_special_tokens = not parse_special
                ids = tok.encode(s, add_special_tokens=False).ids
                out["cases"].append({"tokenizer": rel, "text": s, "parse_special": parse_special, "ids": ids,
                                     "decoded": tok.decode(ids, skip_special_tokens=False),
                                     "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"{OUT.relative_to(REPO)}: {len(out['cases'])} cases (tokenizers {tokenizers.__version__})")


if __name__ == "__main__":
    main()
