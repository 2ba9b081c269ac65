#!/usr/bin/env python3
"""Reference encoder / decoder for slime's delta weight sync, disk transport (numpy + safetensors + zstandard;
no torch, so it runs anywhere).

    python tools/reference/delta_encode.py OLD NEW OUT --encoding {indices,deltas,deltas_zstd} --version N \\
        [--prev-version default] [--bucket-bytes 536870912] [--rank 0] [--check] [--force]
    python tools/reference/delta_encode.py OLD NEW OUT --version N --check-only    # verify an existing sync dir

OLD and NEW are Hugging Face folders (model.safetensors, or shards listed by model.safetensors.index.json) with the
same tensor names, shapes and dtypes. The tool writes what one sync of slime's `UpdateWeightFromDistributedDelta`
(`--update-weight-mode delta --update-weight-transport disk`) writes when the trainer's weights go from OLD to NEW,
then (with --check) applies it to OLD with the independent decoder below and asserts the result equals NEW byte for
byte. Written from slime's code (THUDM/slime, not copied): the sender in
`slime/backends/megatron_utils/update_weight/update_weight_from_distributed_delta.py` (encode_indices,
encode_deltas, DeltaBucket, AsyncSafetensorsWriter, _flush_bucket, _finalize_sync), the manifest dataclasses
`DeltaEncoding` / `DeltaParam` in `slime/backends/megatron_utils/sglang.py`, and the SGLang receiver in slime's
`docker/patch/latest/sglang.patch` (`_decode_delta_one_param`, `_decode_and_apply_blob`, `_delta_checksum`,
`_maybe_zstd_decompress`). That sender existed from slime commit 0a664bc (2026-05-20) until af3d7fff
(2026-07-02, #2089), which replaced it with a different disk format (update_weight_from_disk_delta.py: per-tensor
xor / overwrite diffs in model-NNNNN safetensors + an index) that this tool does NOT write.

Layout of one sync (version N):

    OUT/weight_v{N:06d}/rank{R:04d}_flush{F:06d}.safetensors     F = 0, 1, 2, ... (one file per bucket flush)
    OUT/weight_v{N:06d}/DONE                                      empty, written after every flush file

Each flush file is a safetensors file with exactly two 1-D tensors

    __positions__   uint8 [P]   the bucket's packed positions blob
    __values__      <dtype> [V] the changed elements' values, verbatim bytes of the tensor's own dtype

and the safetensors `__metadata__` (all values strings):

    encoding         "indices" | "deltas" | "deltas_zstd"
    params           json.dumps of a list of {"name", "dtype", "shape", "pos_start", "pos_end", "pos_width",
                     "val_start", "val_end"} (that key order, Python's default separators, as slime's
                     json.dumps([asdict(DeltaParam)...])); dtype = torch's dtype name without "torch." ("float32",
                     "bfloat16", "float16", "int32", "int64", "uint8", ...); shape = the full tensor shape;
                     pos_start/pos_end = byte offsets into __positions__; val_start/val_end = element offsets into
                     __values__; one entry per changed tensor, in file order
    prev_version     the receiver's weight version this delta applies to ("default" = SGLang's initial version)
    current_version  str(N)
    checksum         str(hash(__positions__) ^ (hash(__values__) << 1)) with hash = torch.hash_tensor (elements
                     upcast to float64 / int64, bit-cast to uint64, xor-reduced; 0 for an empty tensor), slime's
                     _checksum; SGLang's receiver refuses a file whose checksum does not match (computed here with
                     numpy, identical to torch 2.13's hash_tensor, see as_float64_or_int64)

`prev_version` is what the brief of this tool and slime's first version of the sender (0a664bc) write; the merged
sender (987b3149e .. a096428ff) writes `current_version` + `checksum` instead and the receiver reads `encoding`,
`params` and `checksum`. Writing all five keys keeps the files readable by both.

Positions of a tensor = the flat element indices whose bytes differ between OLD and NEW (bytewise compare,
dtype-agnostic: the elements viewed as unsigned integers of the element size), ascending. Encodings:

    indices      int32 little-endian absolute positions, pos_width 4
    deltas       gaps d_k = idx_k - idx_{k-1} - 1 with idx_{-1} = -1 (so d_0 = idx_0), little-endian uint16 if the
                 tensor's largest gap is <= 65535, else uint32; pos_width 2 or 4 per tensor.
                 Inverse: idx = cumsum(d + 1) - 1
    deltas_zstd  the `deltas` file's complete safetensors bytes compressed with zstd level 1 (one zstd frame; same
                 file name; the receiver recognises the frame magic 28 b5 2f fd). slime compresses with
                 ZstdCompressor(level=1, threads=-1); this tool uses one thread so the bytes are reproducible (the
                 decompressed bytes are what matters)

Bucketing: tensors are visited in sorted name order (--order dtype: sorted by (dtype name, name); slime: its HF
conversion order, non-experts then experts);
each changed tensor's positions + values are added to the current bucket, which is flushed to the next file first
if adding the tensor would take it past --bucket-bytes (positions bytes + values bytes; a tensor larger than the
limit gets a file of its own). The bucket is also flushed when the dtype changes: slime concatenates the values of
one bucket with torch.cat, which PROMOTES mixed dtypes (bf16 + fp32 -> fp32, and int32 + bf16 -> bf16, which is
lossy) and the receiver casts each slice back to the param's dtype; this tool never mixes dtypes in a file, so
__values__ always has exactly the params' dtype. The decoder accepts a promoted __values__ only when the cast back
is exact. Unchanged tensors do not appear. Headers are written like the safetensors library (tensors ordered by
dtype rank then name, compact JSON, padded with spaces to 8 bytes) except that the `__metadata__` keys are in a
fixed order (the library's order is random per process).
"""

import argparse
import json
import mmap
import os
import re
import shutil
import sys

import numpy as np
import safetensors

ENCODINGS = ("indices", "deltas", "deltas_zstd")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FILE_RE = re.compile(r"^rank(\d{4})_flush(\d{6})\.safetensors$")

# safetensors dtype code -> (torch dtype name, element size); sub-byte codes (F4, F6_*) are not supported
ST_DTYPES = {
    "BOOL": ("bool", 1),
    "U8": ("uint8", 1),
    "I8": ("int8", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E8M0": ("float8_e8m0fnu", 1),
    "I16": ("int16", 2),
    "U16": ("uint16", 2),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I32": ("int32", 4),
    "U32": ("uint32", 4),
    "F32": ("float32", 4),
    "F64": ("float64", 8),
    "I64": ("int64", 8),
    "U64": ("uint64", 8),
}
TORCH_TO_ST = {v[0]: k for k, v in ST_DTYPES.items()}
# the safetensors library writes tensors sorted by (dtype rank descending, name): its Dtype enum order
ST_RANK = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
           "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


class DeltaError(Exception):
    pass


class Tensor:
    """A tensor as raw bytes: safetensors dtype code, shape, flat uint8 array."""

    def __init__(self, dtype, shape, data):
        if dtype not in ST_DTYPES:
            raise DeltaError(f"unsupported safetensors dtype {dtype}")
        self.dtype, self.shape, self.data = dtype, list(shape), data
        self.itemsize = ST_DTYPES[dtype][1]
        self.numel = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        if self.data.size != self.numel * self.itemsize:
            raise DeltaError(f"tensor data has {self.data.size} bytes, expected {self.numel * self.itemsize}")

    @property
    def torch_dtype(self):
        return ST_DTYPES[self.dtype][0]

    def elements(self):
        """The elements as unsigned integers of the element size (little-endian bytes)."""
        return self.data.view(np.dtype(UINT[self.itemsize]).newbyteorder("<"))


# --------------------------------------------------------------------------------------
# safetensors reading / writing (raw bytes, any dtype)
# --------------------------------------------------------------------------------------


def parse_safetensors(buf):
    """buf: bytes / mmap. Returns (metadata dict or None, {name: Tensor}) with views into buf."""
    if len(buf) < 8:
        raise DeltaError("not a safetensors file (shorter than 8 bytes)")
    n = int.from_bytes(buf[:8], "little")
    if 8 + n > len(buf):
        raise DeltaError("safetensors header length past the end of the file")
    header = json.loads(bytes(buf[8 : 8 + n]))
    meta = header.pop("__metadata__", None)
    base = 8 + n
    arr = np.frombuffer(buf, dtype=np.uint8)
    tensors = {}
    for name, info in header.items():
        s, e = info["data_offsets"]
        if not (0 <= s <= e and base + e <= len(buf)):
            raise DeltaError(f"{name}: data offsets {s}, {e} out of range")
        tensors[name] = Tensor(info["dtype"], info["shape"], arr[base + s : base + e])
    return meta, tensors


def safetensors_bytes(tensors, metadata):
    """tensors: {name: (st dtype, shape, bytes)}; metadata: dict of str (key order kept). Same layout as the
    safetensors library: data in (dtype rank descending, name) order, header = compact JSON with __metadata__ first
    and the tensors in data order, padded with spaces to a multiple of 8."""
    order = sorted(tensors, key=lambda k: (-ST_RANK.index(tensors[k][0]), k))
    header, off, blobs = {}, 0, []
    if metadata is not None:
        header["__metadata__"] = metadata
    for k in order:
        dt, shape, data = tensors[k]
        header[k] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + b"".join(blobs)


def weight_files(folder):
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        return sorted(set(json.load(open(idx))["weight_map"].values()))
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        return ["model.safetensors"]
    raise DeltaError(f"{folder}: neither model.safetensors.index.json nor model.safetensors")


def read_folder(folder):
    """{name: Tensor} of an HF folder (memory-mapped)."""
    out = {}
    for fn in weight_files(folder):
        with open(os.path.join(folder, fn), "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        _meta, ts = parse_safetensors(mm)
        for k, t in ts.items():
            if k in out:
                raise DeltaError(f"{folder}: tensor {k} in more than one file")
            out[k] = t
    return out


def check_same_layout(old, new):
    problems = []
    for k in sorted(set(old) - set(new)):
        problems.append(f"only in OLD: {k}")
    for k in sorted(set(new) - set(old)):
        problems.append(f"only in NEW: {k}")
    for k in sorted(set(old) & set(new)):
        if old[k].dtype != new[k].dtype or old[k].shape != new[k].shape:
            problems.append(f"{k}: OLD {old[k].torch_dtype} {old[k].shape}, NEW {new[k].torch_dtype} {new[k].shape}")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DeltaError(f"OLD and NEW differ in tensor names / shapes / dtypes:\n  {shown}")


# --------------------------------------------------------------------------------------
# checksum (torch.hash_tensor, mode 0)
# --------------------------------------------------------------------------------------


def _e4m3fn_table():
    t = np.empty(256, dtype=np.float64)
    for b in range(256):
        s, e, m = b >> 7, (b >> 3) & 15, b & 7
        if e == 15 and m == 7:
            v = np.nan
        elif e == 0:
            v = m / 8 * 2.0**-6
        else:
            v = (1 + m / 8) * 2.0 ** (e - 7)
        t[b] = -v if s else v
    return t


def as_float64_or_int64(t):
    """Elements upcast as torch.hash_tensor does: floating -> float64, integer / bool -> 64-bit integer; returned
    bit-cast to uint64. 16-bit floats go through float32 (as torch's CPU cast: a signalling NaN comes out quiet).
    Checked against torch 2.13 for F64, F32, F16, BF16 (all 65536 bit patterns of the 16-bit ones), I8..I64, U8,
    BOOL; torch's CPU hash_tensor has no kernel for U16..U64 and the fp8 types (their upcast here is the exact
    value, NaN quiet)."""
    u = t.elements()
    dt = t.dtype
    with np.errstate(invalid="ignore"):
        if dt == "F64":
            return u.astype(np.uint64)
        if dt == "F32":
            return u.view(np.float32).astype(np.float64).view(np.uint64)
        if dt == "F16":
            return u.view(np.float16).astype(np.float32).astype(np.float64).view(np.uint64)
        if dt == "BF16":
            return (u.astype(np.uint32) << 16).view(np.float32).astype(np.float64).view(np.uint64)
        if dt == "F8_E5M2":
            return (u.astype(np.uint16) << 8).view(np.float16).astype(np.float32).astype(np.float64).view(np.uint64)
        if dt == "F8_E4M3":
            return _e4m3fn_table()[u].view(np.uint64)
        if dt == "F8_E8M0":
            v = np.where(u == 255, np.nan, np.ldexp(1.0, u.astype(np.int64) - 127))
            return v.view(np.uint64)
    if dt in ("I8", "I16", "I32", "I64"):
        return u.view(np.dtype(f"<i{t.itemsize}")).astype(np.int64).view(np.uint64)
    return u.astype(np.uint64)  # U8 .. U64, BOOL


def hash_tensor(t):
    if t.numel == 0:
        return 0
    return int(np.bitwise_xor.reduce(as_float64_or_int64(t)))


def delta_checksum(positions, values):
    return hash_tensor(positions) ^ (hash_tensor(values) << 1)


# --------------------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------------------


def changed_positions(a, b):
    return np.flatnonzero(a.elements() != b.elements())


def encode_positions(idx, encoding):
    """-> (positions bytes, pos_width)."""
    if encoding == "indices":
        if idx.size and idx[-1] >= 2**31:
            raise DeltaError("indices encoding: position >= 2^31 does not fit int32")
        return idx.astype("<i4").tobytes(), 4
    gaps = np.diff(idx, prepend=-1) - 1
    if gaps.size and gaps.max() >= 2**32:
        raise DeltaError("deltas encoding: gap >= 2^32")
    width = 2 if (gaps.size == 0 or gaps.max() <= 65535) else 4
    return gaps.astype("<u2" if width == 2 else "<u4").tobytes(), width


def visit_order(tensors, order):
    if order == "name":
        return sorted(tensors)
    if order == "dtype":
        return sorted(tensors, key=lambda k: (tensors[k].torch_dtype, k))
    raise DeltaError(f"unknown order {order!r}")


def encode(old_dir, new_dir, out_root, encoding, version, prev_version="default", bucket_bytes=512 * 1024**2,
           rank=0, force=False, order="name", log=print):
    """Write OUT/weight_v{version:06d}/ for OLD -> NEW. Returns the version directory."""
    if encoding not in ENCODINGS:
        raise DeltaError(f"unknown encoding {encoding!r}")
    old, new = read_folder(old_dir), read_folder(new_dir)
    check_same_layout(old, new)
    vdir = os.path.join(out_root, f"weight_v{version:06d}")
    if os.path.exists(vdir):
        if not force:
            raise DeltaError(f"{vdir} exists (use --force to replace it)")
        shutil.rmtree(vdir)
    os.makedirs(vdir)
    if encoding == "deltas_zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=1)

    files = []
    bucket = dict(params=[], pos=[], vals=[], pos_total=0, val_total=0, bytes=0, dtype=None)

    def flush():
        if not bucket["params"]:
            return
        pos = b"".join(bucket["pos"])
        vals = b"".join(bucket["vals"])
        pos_t = Tensor("U8", [len(pos)], np.frombuffer(pos, dtype=np.uint8))
        st_dt = bucket["dtype"]
        val_t = Tensor(st_dt, [bucket["val_total"]], np.frombuffer(vals, dtype=np.uint8))
        meta = {
            "encoding": encoding,
            "params": json.dumps(bucket["params"]),
            "prev_version": str(prev_version),
            "current_version": str(version),
            "checksum": str(delta_checksum(pos_t, val_t)),
        }
        blob = safetensors_bytes({"__positions__": ("U8", [len(pos)], pos), "__values__": (st_dt, [bucket["val_total"]], vals)},
                                 meta)
        if encoding == "deltas_zstd":
            blob = cctx.compress(blob)
        fn = f"rank{rank:04d}_flush{len(files):06d}.safetensors"
        with open(os.path.join(vdir, fn), "wb") as f:
            f.write(blob)
        files.append((fn, len(bucket["params"]), bucket["val_total"], len(blob)))
        bucket.update(params=[], pos=[], vals=[], pos_total=0, val_total=0, bytes=0, dtype=None)

    nnz_total = numel_total = 0
    for name in visit_order(new, order):
        a, b = old[name], new[name]
        numel_total += b.numel
        idx = changed_positions(a, b)
        if idx.size == 0:
            continue
        pos, width = encode_positions(idx, encoding)
        vals = b.elements()[idx].tobytes()
        nbytes = len(pos) + len(vals)
        if bucket["params"] and (bucket["dtype"] != b.dtype or bucket["bytes"] + nbytes > bucket_bytes):
            flush()
        bucket["params"].append({
            "name": name,
            "dtype": b.torch_dtype,
            "shape": b.shape,
            "pos_start": bucket["pos_total"],
            "pos_end": bucket["pos_total"] + len(pos),
            "pos_width": width,
            "val_start": bucket["val_total"],
            "val_end": bucket["val_total"] + idx.size,
        })
        bucket["pos"].append(pos)
        bucket["vals"].append(vals)
        bucket["pos_total"] += len(pos)
        bucket["val_total"] += idx.size
        bucket["bytes"] += nbytes
        bucket["dtype"] = b.dtype
        nnz_total += idx.size
    flush()
    with open(os.path.join(vdir, "DONE"), "w"):
        pass
    nparams = sum(f[1] for f in files)
    log(f"{vdir}: {len(files)} flush file(s), {nparams}/{len(new)} tensors changed, {nnz_total}/{numel_total} "
        f"elements ({100 * nnz_total / max(numel_total, 1):.3f} %), {sum(f[3] for f in files)} bytes")
    for fn, n, v, size in files:
        log(f"  {fn}: {n} params, {v} values, {size} bytes")
    if not files:
        log("  (no tensor changed: only DONE)")
    return vdir


# --------------------------------------------------------------------------------------
# decoder (independent of the encoder's bookkeeping; checks everything it reads)
# --------------------------------------------------------------------------------------


def read_delta_dir(vdir, require_done=True):
    """-> list of (file name, metadata, positions Tensor, values Tensor), in flush order."""
    if require_done and not os.path.isfile(os.path.join(vdir, "DONE")):
        raise DeltaError(f"{vdir}: no DONE marker")
    names = sorted(os.listdir(vdir))
    other = [n for n in names if n != "DONE" and not FILE_RE.match(n)]
    if other:
        raise DeltaError(f"{vdir}: unexpected files {other}")
    out = []
    for fn in (n for n in names if FILE_RE.match(n)):
        with open(os.path.join(vdir, fn), "rb") as f:
            raw = f.read()
        compressed = raw[:4] == ZSTD_MAGIC
        if compressed:
            import zstandard

            raw = zstandard.ZstdDecompressor().decompress(raw)
        meta, ts = parse_safetensors(raw)
        lib = {k: (d["dtype"], list(d["shape"]), bytes(d["data"])) for k, d in safetensors.deserialize(raw)}
        if lib != {k: (t.dtype, t.shape, t.data.tobytes()) for k, t in ts.items()}:
            raise DeltaError(f"{fn}: the safetensors library reads other tensors than this parser")
        if meta is None:
            raise DeltaError(f"{fn}: no __metadata__")
        enc = meta.get("encoding")
        if enc not in ENCODINGS:
            raise DeltaError(f"{fn}: encoding {enc!r}")
        if compressed != (enc == "deltas_zstd"):
            raise DeltaError(f"{fn}: encoding {enc} but the file is {'' if compressed else 'not '}zstd-compressed")
        if sorted(ts) != ["__positions__", "__values__"]:
            raise DeltaError(f"{fn}: tensors {sorted(ts)}, expected __positions__ and __values__")
        p, v = ts["__positions__"], ts["__values__"]
        if p.dtype != "U8" or len(p.shape) != 1 or len(v.shape) != 1:
            raise DeltaError(f"{fn}: __positions__ {p.dtype} {p.shape}, __values__ {v.dtype} {v.shape}")
        if "checksum" in meta and int(meta["checksum"]) != delta_checksum(p, v):
            raise DeltaError(f"{fn}: checksum mismatch")
        out.append((fn, meta, p, v))
    return out


def _values_as(v, lo, hi, st_dtype):
    """Elements lo..hi of __values__ as the bytes of `st_dtype` (a promoted __values__ is cast back exactly)."""
    if v.dtype == st_dtype:
        return v.elements()[lo:hi]
    casts = {("F32", "BF16"), ("F32", "F16"), ("F64", "F32"), ("F64", "BF16"), ("F64", "F16")}
    if (v.dtype, st_dtype) not in casts:
        raise DeltaError(f"__values__ is {v.dtype}, param is {st_dtype}: no exact cast known")
    x = v.elements()[lo:hi].view(np.float32 if v.dtype == "F32" else np.float64)
    if st_dtype == "BF16":
        b = x.astype(np.float32).view(np.uint32)
        out = (b >> 16).astype(np.uint16)
        back = (out.astype(np.uint32) << 16).view(np.float32)
    else:
        out = x.astype(np.float16 if st_dtype == "F16" else np.float32)
        back = out
        out = out.view(np.uint16 if st_dtype == "F16" else np.uint32)
    if not np.array_equal(back.astype(x.dtype).view(UINT[x.itemsize]), x.view(UINT[x.itemsize])):
        raise DeltaError(f"promoted {v.dtype} values are not exactly representable in {st_dtype}")
    return out


def decode_positions(p, param, encoding):
    width = param["pos_width"]
    if encoding == "indices" and width != 4:
        raise DeltaError(f"{param['name']}: indices encoding with pos_width {width}")
    if width not in (2, 4):
        raise DeltaError(f"{param['name']}: pos_width {width}")
    s, e = param["pos_start"], param["pos_end"]
    if not (0 <= s <= e <= p.numel) or (e - s) % width:
        raise DeltaError(f"{param['name']}: positions bytes {s}..{e} of {p.numel}, width {width}")
    raw = p.data[s:e]
    if encoding == "indices":
        return raw.view("<i4").astype(np.int64)
    gaps = raw.view("<u2" if width == 2 else "<u4").astype(np.int64)
    return np.cumsum(gaps + 1) - 1


def apply_delta(old, vdir, require_done=True):
    """Apply one sync directory to `old` ({name: Tensor}). Returns ({name: patched flat uint8 array} of the changed
    tensors, summary). Checks: manifest consistent with `old` (dtype, shape), offsets tile the blobs, positions
    strictly ascending and in range, versions consistent across files, no tensor twice, checksums."""
    patched, seen, versions, encodings, nfiles = {}, set(), set(), set(), 0
    for fn, meta, p, v in read_delta_dir(vdir, require_done):
        nfiles += 1
        enc = meta["encoding"]
        encodings.add(enc)
        versions.add((meta.get("prev_version"), meta.get("current_version")))
        params = json.loads(meta["params"])
        pos_at = val_at = 0
        for prm in params:
            keys = ["name", "dtype", "shape", "pos_start", "pos_end", "pos_width", "val_start", "val_end"]
            if list(prm) != keys:
                raise DeltaError(f"{fn}: param keys {list(prm)}")
            name = prm["name"]
            if name not in old:
                raise DeltaError(f"{fn}: {name} not in the old weights")
            if name in seen:
                raise DeltaError(f"{fn}: {name} appears twice in the sync")
            seen.add(name)
            t = old[name]
            if prm["dtype"] != t.torch_dtype or prm["shape"] != t.shape:
                raise DeltaError(f"{fn}: {name} is {prm['dtype']} {prm['shape']}, old is {t.torch_dtype} {t.shape}")
            if prm["pos_start"] != pos_at or prm["val_start"] != val_at:
                raise DeltaError(f"{fn}: {name} offsets do not follow the previous param's")
            pos_at, val_at = prm["pos_end"], prm["val_end"]
            idx = decode_positions(p, prm, enc)
            lo, hi = prm["val_start"], prm["val_end"]
            if not (0 <= lo <= hi <= v.numel) or hi - lo != idx.size:
                raise DeltaError(f"{fn}: {name}: {idx.size} positions, values {lo}..{hi} of {v.numel}")
            if idx.size and (idx[0] < 0 or idx[-1] >= t.numel or np.any(np.diff(idx) <= 0)):
                raise DeltaError(f"{fn}: {name}: positions not strictly ascending within [0, {t.numel})")
            buf = t.data.copy()
            buf.view(UINT[t.itemsize])[idx] = _values_as(v, lo, hi, t.dtype)
            patched[name] = buf
        if pos_at != p.numel or val_at != v.numel:
            raise DeltaError(f"{fn}: params cover {pos_at}/{p.numel} position bytes, {val_at}/{v.numel} values")
    if len(versions) > 1 or len(encodings) > 1:
        raise DeltaError(f"{vdir}: files disagree on versions {versions} / encodings {encodings}")
    summary = dict(files=nfiles, tensors=len(patched), encoding=next(iter(encodings), None),
                   versions=next(iter(versions), (None, None)))
    return patched, summary


def check(old_dir, new_dir, vdir, log=print):
    """Apply vdir to OLD and assert the result equals NEW byte for byte, and that exactly the changed elements of
    exactly the changed tensors are in the delta."""
    old, new = read_folder(old_dir), read_folder(new_dir)
    check_same_layout(old, new)
    patched, summary = apply_delta(old, vdir)
    for name in sorted(new):
        got = patched.get(name, old[name].data)
        if not np.array_equal(got, new[name].data):
            raise DeltaError(f"{name}: OLD + delta != NEW")
        changed = changed_positions(old[name], new[name]).size
        if (name in patched) != (changed > 0):
            raise DeltaError(f"{name}: {'in the delta but unchanged' if name in patched else 'changed but missing'}")
    # minimality: the delta lists exactly the changed elements (no unchanged position rewritten)
    for fn, meta, p, v in read_delta_dir(vdir):
        for prm in json.loads(meta["params"]):
            idx = decode_positions(p, prm, meta["encoding"])
            if not np.array_equal(idx, changed_positions(old[prm["name"]], new[prm["name"]])):
                raise DeltaError(f"{fn}: {prm['name']}: positions are not exactly the changed elements")
    log(f"check OK: {vdir} ({summary['files']} files, {summary['tensors']} tensors, {summary['encoding']}, "
        f"prev/current version {summary['versions']}) applied to {old_dir} == {new_dir} byte for byte")
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("out", help="delta root; the sync is written to OUT/weight_v{N:06d}/")
    ap.add_argument("--encoding", choices=ENCODINGS, default="deltas")
    ap.add_argument("--version", type=int, required=True, help="N (current_version = str(N))")
    ap.add_argument("--prev-version", default="default", help="prev_version (SGLang's initial version is 'default')")
    ap.add_argument("--bucket-bytes", type=int, default=512 * 1024**2,
                    help="flush limit, positions + values bytes (slime: --update-weight-buffer-size, 512 MiB)")
    ap.add_argument("--rank", type=int, default=0, help="R in rank{R:04d}_flush*.safetensors")
    ap.add_argument("--order", choices=("name", "dtype"), default="name",
                    help="visit order: sorted by name (default), or by (dtype name, name) so that a checkpoint whose "
                    "names interleave dtypes (INT4: weight_packed int32 / weight_scale bf16) needs few files")
    ap.add_argument("--check", action="store_true", help="after writing, apply to OLD and compare with NEW")
    ap.add_argument("--check-only", action="store_true", help="do not write; check OUT/weight_v{N:06d}/")
    ap.add_argument("--force", action="store_true", help="replace an existing OUT/weight_v{N:06d}/")
    a = ap.parse_args(argv)
    try:
        vdir = os.path.join(a.out, f"weight_v{a.version:06d}")
        if not a.check_only:
            vdir = encode(a.old, a.new, a.out, a.encoding, a.version, a.prev_version, a.bucket_bytes, a.rank, a.force,
                          a.order)
        if a.check or a.check_only:
            check(a.old, a.new, vdir)
    except DeltaError as e:
        print(f"delta_encode: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
