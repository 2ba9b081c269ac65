#!/usr/bin/env python3
"""Encoding speed of HF `tokenizers` and of glm5 on the same text, in the same run.

    python3 tools/bench/tokenizer_bench.py [TOKENIZER] [--corpus FILE] [--reps N] [--glm5-cli PATH]

TOKENIZER is a folder with tokenizer.json or a file (default models/glm5-tiny; .zst files are
decompressed for HF). The corpus (default Tests/Fixtures/tokenizers/corpus.txt.zst) is cut into the
same ~64 KB chunks (after a newline) as `glm5 bench --tokenizer`. Both run single-threaded:
HF's `encode` on one chunk at a time with RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false,
glm5 through the Python binding (glm5_tokenize, one call per chunk). The first pass starts with
empty word caches; then the best and median of --reps passes. With --glm5-cli the native
`glm5 bench --tokenizer` figure is printed too (no ctypes in the loop).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bindings" / "python"))


def unzstd(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:4] != b"\x28\xb5\x2f\xfd":
        return data
    try:
        import zstandard
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
    except ImportError:
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout


def chunks(text: bytes, size=65536):
    out, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        while end < len(text) and text[end - 1] != 0x0A:
            end += 1
        out.append(text[start:end].decode("utf-8"))
        start = end
    return out


def measure(name, encode, parts, mb, reps):
    t = time.perf_counter()
    n = sum(len(encode(p)) for p in parts)
    cold = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for p in parts:
            encode(p)
        times.append(time.perf_counter() - t)
    print(f"  {name:<28} first pass {mb / cold:6.2f} MB/s | warm best {mb / min(times):6.2f} MB/s "
          f"(median {mb / statistics.median(times):6.2f}) | {n} tokens")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer", nargs="?", default=str(REPO / "models" / "glm5-tiny"))
    ap.add_argument("--corpus", default=str(REPO / "Tests" / "Fixtures" / "tokenizers" / "corpus.txt.zst"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--glm5-cli", help="path of the glm5 command, to print its native figure as well")
    args = ap.parse_args()

    import tokenizers
    path = Path(args.tokenizer)
    file = path / "tokenizer.json" if path.is_dir() else path
    if path.is_dir() and not file.exists():
        file = path / "tokenizer.json.zst"
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        tmp.write(unzstd(file))
        tmp.flush()
        hf = tokenizers.Tokenizer.from_file(tmp.name)
    text = unzstd(Path(args.corpus))
    parts = chunks(text)
    mb = len(text) / 1e6
    print(f"{file}: corpus {args.corpus}, {mb:.2f} MB in {len(parts)} chunks, single-threaded encode")
    n_hf = measure(f"HF tokenizers {tokenizers.__version__}", lambda s: hf.encode(s, add_special_tokens=False).ids,
                   parts, mb, args.reps)
    try:
        import glm5
        tok = glm5.Tokenizer(path)
        n_glm5 = measure(f"glm5 {glm5.version()} (ctypes)", tok.encode, parts, mb, args.reps)
        if n_glm5 != n_hf:
            print(f"  WARNING: glm5 gave {n_glm5} tokens, HF {n_hf}")
    except ImportError as e:
        print(f"  glm5: not measured ({e})")
    if args.glm5_cli:
        out = subprocess.run([args.glm5_cli, "bench", "--tokenizer", str(path), "--corpus", args.corpus,
                              "--reps", str(args.reps)], check=True, capture_output=True, text=True, cwd=REPO).stdout
        for line in out.splitlines():
            if "MB/s" in line:
                print(f"  glm5 bench (native)         {line.strip()}")


if __name__ == "__main__":
    main()
