"""Shared helpers: where the fixture models are, and what their files say."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Test the installed package if there is one (or PYTHONPATH names one), else this checkout's.
if importlib.util.find_spec("glm5") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
FIXTURES_DIR = REPO / "Tests" / "Fixtures"


def fixture_dirs():
    """Every fixture model: a folder under Tests/Fixtures holding config.json."""
    if not FIXTURES_DIR.is_dir():
        return []
    return sorted(p for p in FIXTURES_DIR.iterdir() if (p / "config.json").is_file())


def read_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def weight_files(folder: Path):
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / n for n in names]
    return [folder / "model.safetensors"]


def read_tensors(folder: Path) -> dict:
    """name -> (dtype, shape, byte size) over the model's safetensors files."""
    tensors = {}
    for f in weight_files(folder):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, t in header.items():
            if name == "__metadata__":
                continue
            begin, end = t["data_offsets"]
            tensors[name] = (t["dtype"], tuple(t["shape"]), end - begin)
    return tensors


# BF16 has no numpy type: its raw bits are read as uint16 (what Model.update_tensors takes with
# dtype="bf16"); F8 likewise as uint8.
_NUMPY_DTYPES = {
    "F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1", "I8": "i1",
    "I16": "<i2", "U16": "<u2", "BF16": "<u2", "F8_E4M3": "u1", "F8_E5M2": "u1",
}


def read_safetensors(path: Path, with_dtypes: bool = False) -> dict:
    """name -> numpy array, for a whole (small) safetensors file: 8-byte little-endian header
    length, a JSON header {name: {dtype, shape, data_offsets}}, then the data. With
    ``with_dtypes``, name -> (safetensors dtype name, array)."""
    import numpy as np

    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype=_NUMPY_DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
        out[name] = (t["dtype"], arr) if with_dtypes else arr
    return out


def read_model_tensors(folder: Path) -> dict:
    """name -> (safetensors dtype name, numpy array) over every weight file of a model folder
    (BF16 as uint16 bits)."""
    out = {}
    for f in weight_files(folder):
        out.update(read_safetensors(f, with_dtypes=True))
    return out


def golden_dirs():
    """The fixture models that carry golden.safetensors."""
    return [d for d in fixture_dirs() if (d / "golden.safetensors").is_file()]


def read_golden(folder: Path) -> dict:
    return read_safetensors(folder / "golden.safetensors")


def golden_sequences(golden: dict):
    """[(tokens, logits, logprobs)] for seq0, seq1, ..."""
    out = []
    i = 0
    while f"seq{i}.tokens" in golden:
        out.append((golden[f"seq{i}.tokens"], golden[f"seq{i}.logits"], golden[f"seq{i}.logprobs"]))
        i += 1
    return out


@pytest.fixture(params=golden_dirs(), ids=lambda p: p.name)
def golden_dir(request) -> Path:
    return request.param


@pytest.fixture(params=fixture_dirs(), ids=lambda p: p.name)
def fixture_dir(request) -> Path:
    return request.param
