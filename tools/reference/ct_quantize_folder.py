#!/usr/bin/env python3
"""Reference INT4 quantizer: compressed-tensors `pack-quantized` (weight-only, group strategy) of an HF
GLM-5 folder, done by the compressed-tensors library itself. It works on the checkpoint tensors (per-expert
Linear layout, MTP layer included), so it doubles as a stand-in / byte-for-byte reference for
`glm5 quantize` and as the test input of check_quantized.py.

    /work/venv-ref/bin/python tools/reference/ct_quantize_folder.py SRC_FOLDER OUT_FOLDER \
        [--group-size 32] [--asymmetric] [--ignore NAME_OR_re:PATTERN ...]

Quantized: every Linear except lm_head, router `mlp.gate`, `indexer.weights_proj` and the MTP `eh_proj`
(always ignored) and modules whose input size is not a multiple of the group size. Scales/zero points: the
library's min-max (compute_dynamic_scales_and_zp); scale dtype = the source storage dtype. The written
config is ModelCompressor.from_pretrained_model's (ignore = exact names of all unquantized Linear modules).
"""

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from safetensors.torch import save_file  # noqa: E402

import quant_formats as QF  # noqa: E402

BASE_IGNORE = QF.CT_ALWAYS_IGNORE


def natural_key(s):
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def quantize_folder(src, out, group_size=32, symmetric=True, extra_ignore=()):
    from make_fixtures import read_folder_tensors

    state = read_folder_tensors(src)
    stored, qdict, _comp, quantized, unquantized = QF.ct_quantize_state(
        state, group_size, symmetric, BASE_IGNORE + list(extra_ignore), keep_ignore_as_given=False
    )
    os.makedirs(out, exist_ok=True)
    config = json.load(open(os.path.join(src, "config.json")))
    config["quantization_config"] = qdict
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    gc = os.path.join(src, "generation_config.json")
    if os.path.exists(gc):
        shutil.copy(gc, os.path.join(out, "generation_config.json"))
    names = sorted(stored, key=natural_key)
    save_file({k: stored[k].contiguous() for k in names}, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return quantized, unquantized


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--group-size", type=int, default=32)
    ap.add_argument("--asymmetric", action="store_true")
    ap.add_argument("--ignore", nargs="*", default=[])
    a = ap.parse_args()
    q, u = quantize_folder(a.src, a.out, a.group_size, not a.asymmetric, a.ignore)
    print(f"quantized {len(q)} Linear modules, left {len(u)} unquantized: {u}")


if __name__ == "__main__":
    main()
