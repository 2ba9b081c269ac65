#!/usr/bin/env python3
"""Side-by-side table of compare_llama_cpp.sh's results.

Usage: compare_table.py RESULTS_DIR PROMPT GEN

Reads RESULTS_DIR/llama-round*.json (llama-bench -o json) and RESULTS_DIR/glm5-round*.json
(glm5 bench --preset glm5-bench --json) and prints a markdown table: tokens/s of each engine,
best and median over every repetition of every round, and glm5 / llama.cpp (> 1: glm5 faster).
Also writes RESULTS_DIR/compare.json with the same figures.
"""

import glob
import json
import statistics
import sys
from pathlib import Path


def rates_llama(files, prompt, gen):
    """{(kind, depth): [tokens/s per sample]} from llama-bench JSON files."""
    out = {}
    for f in files:
        for t in json.loads(Path(f).read_text()):
            if t["n_prompt"] == prompt and t["n_gen"] == 0:
                key, n = ("pp", t["n_depth"]), prompt
            elif t["n_gen"] == gen and t["n_prompt"] == 0:
                key, n = ("tg", t["n_depth"]), gen
            else:
                continue
            out.setdefault(key, []).extend(n / (ns / 1e9) for ns in t["samples_ns"])
    return out


def rates_glm5(files, prompt):
    out = {}
    for f in files:
        j = json.loads(Path(f).read_text())
        p = j["prefill"]
        if int(p["tokens"]) == prompt:
            out.setdefault(("pp", 0), []).extend(prompt / t for t in p["time_s_all"])
        for d in j["depths"]:
            out.setdefault(("tg", int(d["depth"])), []).extend(1e3 / ms for ms in d["ms_per_token_all"])
    return out


def fmt(x):
    return "—" if x is None else f"{x:.2f}"


def main():
    results, prompt, gen = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    lf = sorted(glob.glob(str(results / "llama-round*.json")))
    gf = sorted(glob.glob(str(results / "glm5-round*.json")))
    if not lf or not gf:
        sys.exit(f"no results in {results} (llama: {len(lf)} files, glm5: {len(gf)})")
    llama, glm5 = rates_llama(lf, prompt, gen), rates_glm5(gf, prompt)
    keys = sorted(set(llama) | set(glm5), key=lambda k: (k[0] != "pp" or k[1] != 0, k[0] == "pp", k[1]))
    rows = []
    print("\n| test | glm5 t/s best | glm5 median | llama.cpp t/s best | llama.cpp median | glm5 / llama.cpp best | median |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, depth in keys:
        g, l = glm5.get((kind, depth)), llama.get((kind, depth))
        gb, gm = (max(g), statistics.median(g)) if g else (None, None)
        lb, lm = (max(l), statistics.median(l)) if l else (None, None)
        rb = gb / lb if gb and lb else None
        rm = gm / lm if gm and lm else None
        name = f"pp{prompt}" if kind == "pp" else f"tg{gen}"
        name += f" @ d{depth}" if depth or kind == "tg" else ""
        print(f"| {name} | {fmt(gb)} | {fmt(gm)} | {fmt(lb)} | {fmt(lm)} | {fmt(rb)} | {fmt(rm)} |")
        rows.append({"test": name, "kind": kind, "depth": depth, "glm5_samples": len(g or []), "llama_samples": len(l or []),
                     "glm5_tokens_per_s_best": gb, "glm5_tokens_per_s_median": gm,
                     "llama_tokens_per_s_best": lb, "llama_tokens_per_s_median": lm,
                     "ratio_best": rb, "ratio_median": rm})
    print(f"\nt/s = tokens per second; best and median over all repetitions of {len(gf)} glm5 and {len(lf)} llama.cpp runs.")
    print(f"pp{prompt}: prefill of {prompt} tokens. tg{gen} @ dN: {gen} decoded tokens after N tokens of context "
          "(llama.cpp: a real prefill; glm5: a synthetic cache of N positions, 1 for d0). "
          f"pp{prompt} @ dN > 0 is measured by llama-bench only.")
    (results / "compare.json").write_text(json.dumps({"prompt": prompt, "gen": gen, "llama_files": lf, "glm5_files": gf,
                                                      "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
