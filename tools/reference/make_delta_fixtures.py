#!/usr/bin/env python3
"""Tests/Fixtures/deltas/: slime delta-weight-sync directories (delta_encode.py) between committed fixtures.

    python tools/reference/make_delta_fixtures.py [--fixtures Tests/Fixtures]

numpy + safetensors + zstandard only. Writes (prev_version "default", current_version "1"; each one is applied to
OLD by delta_encode's decoder and checked against NEW byte for byte, exactly the changed elements listed):

  deltas/tiny-dsa-v2.indices/weight_v000001/       tiny-dsa -> tiny-dsa-v2, --bucket-bytes 32768 (4 files)
  deltas/tiny-dsa-v2.deltas/weight_v000001/        same, deltas (3 files)
  deltas/tiny-dsa-v2.deltas_zstd/weight_v000001/   same, deltas_zstd (3 files)
  deltas/tiny-int4-g32-v2.deltas/weight_v000001/   tiny-int4-g32 -> tiny-int4-g32-v2, deltas, --order dtype,
                                                   --bucket-bytes 32768 (int32 weight_packed, bf16 weight_scale /
                                                   weights / biases, f32 e_score_correction_bias; weight_shape
                                                   int64 unchanged, absent)
  deltas/gap-u32/{old,new}/model.safetensors       synthetic pair (no tensor of the model fixtures has more than
                                                   65536 elements): big.weight bf16 [2, 32800] changed at its first
                                                   and last element only (gap 65598 > 65535: uint32 positions),
                                                   a.weight bf16 [16, 16] changed at 5 elements (uint16),
                                                   c.bias f32 [4] unchanged
  deltas/gap-u32.deltas/weight_v000001/            old -> new, deltas, one file holding a pos_width-2 and a
                                                   pos_width-4 param

The equivalent delta_encode.py command lines are printed.
"""

import argparse
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import delta_encode as D  # noqa: E402

BUCKET = 32768


def bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_st(path, tensors):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    blob = D.safetensors_bytes({k: (dt, shape, arr.tobytes()) for k, (dt, shape, arr) in tensors.items()},
                               {"format": "pt"})
    with open(path, "wb") as f:
        f.write(blob)


def make_gap_pair(root):
    rng = np.random.default_rng(65536)
    a = bf16_bits(rng.standard_normal(256) * 0.05)
    big = bf16_bits(rng.standard_normal(2 * 32800) * 0.05)
    c = (rng.standard_normal(4) * 0.1).astype(np.float32)
    old = {"a.weight": ("BF16", [16, 16], a), "big.weight": ("BF16", [2, 32800], big), "c.bias": ("F32", [4], c)}
    a2, big2 = a.copy(), big.copy()
    for i in (3, 40, 41, 200, 255):
        a2[i] ^= 0x0040  # flip a mantissa bit
    big2[0] ^= 0x0040
    big2[-1] ^= 0x0040
    new = {"a.weight": ("BF16", [16, 16], a2), "big.weight": ("BF16", [2, 32800], big2), "c.bias": ("F32", [4], c)}
    if os.path.isdir(root):
        shutil.rmtree(root)
    write_st(os.path.join(root, "old", "model.safetensors"), old)
    write_st(os.path.join(root, "new", "model.safetensors"), new)
    return os.path.join(root, "old"), os.path.join(root, "new")


def one(old, new, out, encoding, bucket=512 * 1024**2, order="name"):
    if os.path.isdir(out):
        shutil.rmtree(out)
    print(f"$ python tools/reference/delta_encode.py {old} {new} {out} --encoding {encoding} --version 1 "
          f"--prev-version default --bucket-bytes {bucket}" + (f" --order {order}" if order != "name" else "")
          + " --check")
    vdir = D.encode(old, new, out, encoding, 1, "default", bucket, order=order)
    D.check(old, new, vdir)
    return vdir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default="Tests/Fixtures")
    a = ap.parse_args()
    fx = a.fixtures
    d = os.path.join(fx, "deltas")
    os.makedirs(d, exist_ok=True)
    for enc in D.ENCODINGS:
        one(os.path.join(fx, "tiny-dsa"), os.path.join(fx, "tiny-dsa-v2"), os.path.join(d, f"tiny-dsa-v2.{enc}"), enc,
            BUCKET)
    one(os.path.join(fx, "tiny-int4-g32"), os.path.join(fx, "tiny-int4-g32-v2"),
        os.path.join(d, "tiny-int4-g32-v2.deltas"), "deltas", BUCKET, order="dtype")
    old, new = make_gap_pair(os.path.join(d, "gap-u32"))
    vdir = one(old, new, os.path.join(d, "gap-u32.deltas"), "deltas")
    widths = {p["name"]: p["pos_width"] for _fn, meta, _p, _v in D.read_delta_dir(vdir)
              for p in __import__("json").loads(meta["params"])}
    assert widths == {"a.weight": 2, "big.weight": 4}, widths


if __name__ == "__main__":
    main()
