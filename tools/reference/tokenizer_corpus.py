#!/usr/bin/env python3
"""Build the tokenizer test corpus (Tests/Fixtures/tokenizers/corpus.txt.zst) deterministically.

    python3 tools/reference/tokenizer_corpus.py Tests/Fixtures/tokenizers/corpus.txt.zst

Standard library only (the output is compressed with the `zstd` command, level 19). The text is a
mix meant to break tokenizers, every part from this machine's CPython (PSF licence) or generated
here from a fixed seed:

  1. code       every 17th `.py` file of the standard library (sorted paths, see stdlib_py_files),
                up to 420 kB;
  2. prose      the English help topics of `pydoc_data.topics` (Python's documentation), 300 kB;
  3. cjk        CPython's test/cjkencodings/*-utf8.txt (Chinese, Japanese, Korean), and sentences
                drawn from their Han characters with Chinese punctuation;
  4. emoji      emoji with skin tones, ZWJ families and professions, flags, keycaps, tag sequences,
                variation selectors, inside sentences;
  5. spaces     runs of spaces and tabs, CRLF and lone CR lines, form feeds, NBSP, U+3000, U+2028,
                U+0085, trailing spaces before newlines;
  6. unicode    lone and stacked combining marks, Nd digits of other scripts, No/Nl numbers,
                letter-like symbols, math alphanumerics, Greek, Cyrillic, Arabic, Hebrew, Thai,
                Devanagari, Hangul, kana, contractions in every case ('S 'LL 'ſ);
  7. bytes      text that looks like invalid bytes: "\\xff\\xfe" escapes, mojibake, U+FFFD, BOMs,
                C0/C1 controls, private use and noncharacters, base64 and hex dumps, long digit and
                punctuation runs;
  8. mix        seeded random strings over all of the above.

Parts are separated by blank lines; the test encodes every line, every paragraph and large chunks.
"""

import glob
import os
import random
import subprocess
import sys
import sysconfig

SEED = 20260512


def stdlib_dir():
    return sysconfig.get_paths()["stdlib"]


def stdlib_py_files(include_tests=False):
    """The standard library's .py files, sorted; without site-packages (and without the test
    suites unless include_tests). The bundled model's tokenizer (and model) train on exactly these."""
    root = stdlib_dir()
    out = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, root)
        parts = rel.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts:
            continue
        if not include_tests and any(p in ("test", "tests", "idle_test") for p in parts):
            continue
        out.append(path)
    return out


def read_utf8(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def part_code(limit=420_000):
    out, n = [], 0
    for i, path in enumerate(stdlib_py_files()):
        if i % 17:
            continue
        text = read_utf8(path)
        if text is None:
            continue
        out.append(text)
        n += len(text.encode())
        if n >= limit:
            break
    return "\n\n".join(out)


def part_prose(limit=300_000):
    from pydoc_data.topics import topics
    out, n = [], 0
    for key in sorted(topics):
        out.append(topics[key])
        n += len(topics[key].encode())
        if n >= limit:
            break
    return "\n\n".join(out)


def part_cjk(rng):
    files = sorted(glob.glob(os.path.join(stdlib_dir(), "test", "cjkencodings", "*-utf8.txt")))
    texts = [read_utf8(p) or "" for p in files]
    han = sorted({c for t in texts for c in t if 0x4E00 <= ord(c) <= 0x9FFF})
    punct = "，。、！？；：「」『』（）《》……——"
    sentences = []
    for _ in range(2500):
        words = ["".join(rng.choice(han) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(3, 12))]
        s = "".join(w + (rng.choice(punct) if rng.random() < 0.25 else "") for w in words)
        if rng.random() < 0.2:
            s += " GLM-5 " + str(rng.randint(0, 99999)) + " 模型"
        sentences.append(s + rng.choice("。！？"))
    return "\n\n".join(texts) + "\n\n" + "\n".join("".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4))


EMOJI_BASE = ["😀", "😂", "🥲", "🤖", "🧠", "🔥", "✨", "🚀", "🎉", "💡", "🐍", "🦀", "🍣", "🌏", "❤️", "✔️", "☺️", "⭐"]
PEOPLE = ["👋", "👍", "🙏", "💪", "🧑", "👩", "👨", "🧒", "🤝", "✌️"]
TONES = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]
ZWJ = [
    "👨\u200d👩\u200d👧\u200d👦", "👩\u200d👩\u200d👦", "👨\u200d💻", "👩🏽\u200d🔬", "🧑🏿\u200d🚀",
    "🏳️\u200d🌈", "🏴\u200d☠️", "❤️\u200d🔥", "🐻\u200d❄️", "👁️\u200d🗨️", "🧔🏻\u200d♂️", "👩🏾\u200d🤝\u200d👨🏼",
]
FLAGS = ["🇨🇳", "🇫🇷", "🇯🇵", "🇺🇸", "🇺🇳", "🇪🇺", "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"]
KEYCAPS = ["#\ufe0f\u20e3", "1\ufe0f\u20e3", "*\u20e3", "9\ufe0f\u20e3"]


def part_emoji(rng):
    words = "the model said yes no maybe ok great build test ship 你好 世界".split()
    lines = []
    for _ in range(2200):
        toks = []
        for _ in range(rng.randint(2, 10)):
            r = rng.random()
            if r < 0.35:
                toks.append(rng.choice(words))
            elif r < 0.5:
                toks.append(rng.choice(EMOJI_BASE))
            elif r < 0.65:
                toks.append(rng.choice(PEOPLE) + rng.choice(TONES))
            elif r < 0.8:
                toks.append(rng.choice(ZWJ))
            elif r < 0.9:
                toks.append(rng.choice(FLAGS))
            else:
                toks.append(rng.choice(KEYCAPS))
        sep = rng.choice([" ", "", "  ", "\t"])
        lines.append(sep.join(toks))
    return "\n".join(lines)


def part_spaces(rng):
    pieces = []
    ws = [" ", "  ", "\t", " \t", "\t\t", "\u00a0", "\u3000", "\u2028", "\u0085", "\u2009", "\u202f", "\f", "\v", "\u200b", "\u180e", "\ufeff"]
    for i in range(3000):
        word = rng.choice(["def", "x", "return", "if", "值", "é", "1", "(", ")", "==", "foo_bar", "'", "\""])
        lead = " " * rng.choice([0, 1, 2, 3, 4, 7, 8, 12, 16, 33]) + "\t" * rng.choice([0, 0, 1, 2])
        mid = rng.choice(ws) * rng.randint(1, 5)
        end = rng.choice(["\n", "\r\n", "\r", " \n", "   \r\n", "\n\n", "\r\n\r\n", "\t\n", "\n\n\n\n", " "])
        pieces.append(lead + word + mid + word + end)
    pieces.append(" " * 200 + "\n" + "\t" * 50 + "\r\n" * 20 + "\n" * 30 + " \n" * 10)
    return "".join(pieces)


def part_unicode(rng):
    samples = [
        "\u0301", "\u0301\u0301e", "a\u0300\u0301\u0302\u0303", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319",
        "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "০১২৩", "๐๑๒๓๔", "０１２３４５", "𝟎𝟏𝟐𝟑", "߀߁߂", "᠐᠑᠒",
        "½ ¾ ² ³ ① ② ⑩ ⅓", "Ⅻ ⅻ ᛮ ᛯ 〇 〡", "℃ ℉ ℕ ℝ ℤ ™ ℡ K Å ℓ ℮ ℵ ⅈ", "𝐀𝐁𝐂 𝑥𝑦𝑧 𝔄𝔅 𝕏 𝓐",
        "Ελληνικά κείμενα", "Русский текст, ёжик", "العربية نص ١٢٣", "עברית טקסט", "ภาษาไทยไม่มีช่องว่าง",
        "हिन्दी पाठ", "한국어 텍스트", "ひらがな カタカナ ｶﾀｶﾅ", "Ǆǅǆ ǈ ﬁ ﬂ ß ẞ İ ı", "𐌰𐌱𐌲 𓀀𓀁",
        "I'm he's we'll they've she'd it's I'M HE'S WE'LL THEY'VE SHE'D 'Re 'vE 'ſ 'Ll", "don't DON'T can’t", "IT'ſ it'ſtuff DON'ſT we'ſs 'ſ'ſ x'Ss a'Kelvin 'ſ1 ſ's",
        "x²+y²=z² ∀x∈ℝ ∑ ∫ √ ≠ ≤ ≥ ∞", "→ ← ↑ ↓ ⇒ ⟨⟩ ‖ § ¶ † ‡ • ※", "「引用」『二重』【括弧】",
        "a\u200db a\u200cb \u200e\u200f\u202a\u202c", "e\ufe0f \u2764\ufe0e", "\u1100\u1161\u11a8 가각",
    ]
    lines = []
    for _ in range(2500):
        k = rng.randint(1, 4)
        s = rng.choice([" ", "", "\t", ", "]).join(rng.choice(samples) for _ in range(k))
        if rng.random() < 0.3:
            s = rng.choice(samples)[:1] + s
        lines.append(s)
    return "\n".join(lines)


def part_bytes(rng):
    samples = [
        "\\xff\\xfe\\x00", "b'\\x80\\x81'", "Ã©tÃ© Ã¼ber â€œquotesâ€\x9d", "\ufffd\ufffd mojibake \ufffd",
        "\ufeffBOM at start", "\x00\x01\x02\x1b[31mred\x1b[0m\x7f", "\x80\x85\x9f C1", "\ue000\uf8ff\U000f0000\U0010fffd",
        "\ufdd0\ufffe\uffff", "%E4%BD%A0%C3%A9", "\\u00e9\\U0001F600", "&#x1F600; &amp; &lt;",
        "0x7f454c46 0xDEADBEEF", "=?utf-8?b?5L2g5aW9?=",
    ]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lines = []
    for _ in range(1800):
        r = rng.random()
        if r < 0.4:
            lines.append(rng.choice(samples) + " " + rng.choice(samples))
        elif r < 0.6:
            lines.append("".join(rng.choice(alphabet) for _ in range(rng.randint(20, 400))) + "==")
        elif r < 0.75:
            lines.append(" ".join("%02x" % rng.randrange(256) for _ in range(rng.randint(8, 48))))
        elif r < 0.88:
            lines.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 80))))
        else:
            lines.append("".join(rng.choice("!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~") for _ in range(rng.randint(1, 60))))
    return "\n".join(lines)


def part_mix(rng, pool):
    lines = []
    for _ in range(1500):
        n = rng.randint(1, 40)
        lines.append("".join(rng.choice(pool) for _ in range(n)))
    return "\n".join(lines)


def build():
    rng = random.Random(SEED)
    parts = [part_code(), part_prose(), part_cjk(rng), part_emoji(rng), part_spaces(rng), part_unicode(rng), part_bytes(rng)]
    pool = sorted(set("".join(parts[2:])))
    parts.append(part_mix(rng, pool))
    return "\n\n".join(parts) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    text = build()
    data = text.encode("utf-8")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    if out.endswith(".zst"):
        subprocess.run(["zstd", "-q", "-19", "-f", f"--stream-size={len(data)}", "-o", out], input=data, check=True)
    else:
        with open(out, "wb") as f:
            f.write(data)
    print(f"{out}: {len(data)} bytes, {text.count(chr(10))} lines, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
