"""Models: loading the fixtures, their facts, failures, lifetime, threads."""

from __future__ import annotations

import gc
import json
import threading

import pytest

import glm5
from conftest import FIXTURES_DIR, fixture_dirs, read_config, read_tensors

DTYPE_OF_CONFIG = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}


def test_fixtures_present():
    assert fixture_dirs(), f"no fixture models (folders with config.json) under {FIXTURES_DIR}"


def test_info_matches_config(fixture_dir):
    cfg = read_config(fixture_dir)
    with glm5.Model(fixture_dir, threads=2) as m:
        info = m.info
    assert isinstance(info, glm5.ModelInfo)
    assert info.vocab_size == cfg["vocab_size"]
    assert info.hidden_size == cfg["hidden_size"]
    assert info.n_layers == cfg["num_hidden_layers"]
    assert info.n_dense_layers == cfg["first_k_dense_replace"]
    assert info.n_moe_layers == cfg["num_hidden_layers"] - cfg["first_k_dense_replace"]
    assert info.n_heads == cfg["num_attention_heads"]
    assert info.q_lora_rank == cfg["q_lora_rank"]
    assert info.kv_lora_rank == cfg["kv_lora_rank"]
    assert info.qk_nope_head_dim == cfg["qk_nope_head_dim"]
    assert info.qk_rope_head_dim == cfg["qk_rope_head_dim"]
    assert info.v_head_dim == cfg["v_head_dim"]
    assert info.n_routed_experts == cfg["n_routed_experts"]
    assert info.n_experts_per_tok == cfg["num_experts_per_tok"]
    assert info.n_shared_experts == cfg["n_shared_experts"]
    assert info.index_n_heads == cfg["index_n_heads"]
    assert info.index_head_dim == cfg["index_head_dim"]
    assert info.index_topk == cfg["index_topk"]
    assert info.max_position_embeddings == cfg["max_position_embeddings"]
    dtype = cfg.get("dtype") or cfg.get("torch_dtype")
    if dtype in DTYPE_OF_CONFIG:
        assert DTYPE_OF_CONFIG[dtype] in info.weight_dtypes


def test_info_matches_weight_files(fixture_dir):
    """MTP, dtypes, parameter count and bytes against the safetensors headers themselves."""
    cfg = read_config(fixture_dir)
    tensors = read_tensors(fixture_dir)
    with glm5.Model(fixture_dir) as m:
        info = m.info
    mtp_prefix = f"model.layers.{cfg['num_hidden_layers']}."
    has_mtp = any(name.startswith(mtp_prefix) for name in tensors)
    assert has_mtp  # the fixtures carry their MTP layer
    assert info.has_mtp == has_mtp
    assert info.n_mtp_layers == (cfg.get("num_nextn_predict_layers", 0) if has_mtp else 0)
    dtypes = {d for d, _, _ in tensors.values()}
    assert set(info.weight_dtypes) == dtypes
    assert info.weight_dtype_mask == sum(1 << glm5.DType[d] for d in dtypes)
    n_params = 0
    for _, shape, _ in tensors.values():
        n = 1
        for s in shape:
            n *= s
        n_params += n
    assert info.n_parameters == n_params
    assert info.weight_file_bytes == sum(b for _, _, b in tensors.values())
    # Linear weight formats, from the tensors present; resident memory = mapped data + small copies.
    names = set(tensors)
    formats = set()
    if any(n.endswith(".weight_packed") for n in names):
        formats.add("int4_group")
    if any(n.endswith(".weight_scale_inv") for n in names):
        formats.add("fp8_block")
    if any(n.endswith(".weight") and len(shape) == 2 and d in ("F32", "BF16", "F16") and "embed_tokens" not in n
           for n, (d, shape, _) in tensors.items()):
        formats.add("float")  # lm_head and the router always stay in float
    assert set(info.weight_formats) == formats
    assert info.weight_file_bytes <= info.resident_weight_bytes < 1.05 * info.weight_file_bytes + 65536


def test_info_is_frozen_and_dict(fixture_dir):
    with glm5.Model(fixture_dir) as m:
        info = m.info
        assert m.info == info  # the same facts every time
    with pytest.raises(Exception):
        info.vocab_size = 1  # frozen
    d = info.as_dict()
    assert d["vocab_size"] == info.vocab_size
    assert isinstance(d["weight_dtypes"], tuple)


def test_model_shared_by_threads(fixture_dir):
    with glm5.Model(fixture_dir) as m:
        expected = m.info
        results, errors = [], []

        def work():
            try:
                for _ in range(50):
                    results.append(m.info == expected)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(results) == 200 and all(results)


# -- failures -------------------------------------------------------------------------------------


def expect_error(status, *, path, threads=None, needle=None):
    with pytest.raises(glm5.Glm5Error) as e:
        glm5.Model(path, threads=threads)
    err = e.value
    assert err.status == status
    assert isinstance(err.status, glm5.Status)
    assert err.message
    assert err.message in str(err)
    assert glm5.status_string(status) in str(err)
    if needle is not None:
        assert needle in err.message
    return err


def test_missing_path_is_io_error(tmp_path):
    missing = tmp_path / "no-such-model"
    err = expect_error(glm5.Status.IO, path=missing, needle=str(missing))
    assert isinstance(err, glm5.IoError)


def test_folder_without_config_is_io_error(tmp_path):
    err = expect_error(glm5.Status.IO, path=tmp_path, needle="config.json")
    assert str(tmp_path) in err.message


def test_invalid_json_is_bad_format(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "glm_moe_dsa",')
    err = expect_error(glm5.Status.BAD_FORMAT, path=tmp_path, needle="config.json")
    assert isinstance(err, glm5.BadFormatError)


def test_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 32}))
    err = expect_error(glm5.Status.UNSUPPORTED, path=tmp_path, needle="llama")
    assert isinstance(err, glm5.UnsupportedError)


def test_incomplete_config_is_bad_format(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glm_moe_dsa"}))
    expect_error(glm5.Status.BAD_FORMAT, path=tmp_path, needle="config.json")


def test_config_without_weights_is_io_error(tmp_path, fixture_dir):
    (tmp_path / "config.json").write_text((fixture_dir / "config.json").read_text())
    expect_error(glm5.Status.IO, path=tmp_path, needle="model.safetensors")


def test_truncated_weights_are_bad_format(tmp_path, fixture_dir):
    (tmp_path / "config.json").write_text((fixture_dir / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 8)
    expect_error(glm5.Status.BAD_FORMAT, path=tmp_path, needle="model.safetensors")


@pytest.mark.parametrize("threads", [-1, 1025, 2**31 - 1, -(2**31), 2**40])
def test_threads_out_of_range(threads):
    path = fixture_dirs()[0] if fixture_dirs() else FIXTURES_DIR
    err = expect_error(glm5.Status.INVALID_ARGUMENT, path=path, threads=threads, needle="threads")
    assert isinstance(err, glm5.InvalidArgumentError)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("threads", ["2", 2.0, True])
def test_threads_wrong_type(threads):
    with pytest.raises(TypeError):
        glm5.Model(FIXTURES_DIR, threads=threads)


def test_errors_are_per_thread(tmp_path):
    """glm5_last_error is thread-local: each thread's error names its own path."""
    messages = {}

    def work(i):
        p = tmp_path / f"missing-{i}"
        for _ in range(20):
            try:
                glm5.Model(p)
            except glm5.Glm5Error as e:
                messages.setdefault(i, set()).add(e.message)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert len(messages[i]) == 1
        (msg,) = messages[i]
        assert f"missing-{i}" in msg


def test_glm5_error_construction():
    e = glm5.Glm5Error(glm5.Status.BUSY, "x")
    assert type(e) is glm5.BusyError and e.status is glm5.Status.BUSY and e.message == "x"
    e = glm5.Glm5Error(42, "y")
    assert type(e) is glm5.Glm5Error and e.status == 42
    assert "unknown status" in str(e)
    import pickle

    e2 = pickle.loads(pickle.dumps(glm5.Glm5Error(glm5.Status.IO, "z")))
    assert type(e2) is glm5.IoError and e2.message == "z"


# -- lifetime -------------------------------------------------------------------------------------


def test_close_twice_and_use_after_close(fixture_dir):
    m = glm5.Model(fixture_dir)
    assert not m.closed
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(glm5.Glm5Error) as e:
        m.info
    assert e.value.status == glm5.Status.INVALID_ARGUMENT
    assert "closed" in e.value.message
    assert "closed" in repr(m)


def test_context_manager_closes(fixture_dir):
    with glm5.Model(fixture_dir) as m:
        assert m.info.vocab_size > 0
    assert m.closed
    m.close()


def test_del_frees(fixture_dir):
    for _ in range(20):
        m = glm5.Model(fixture_dir)
        assert m.info.n_layers > 0
        del m
    gc.collect()


def test_failed_init_then_del_is_harmless(tmp_path):
    with pytest.raises(glm5.IoError):
        glm5.Model(tmp_path / "nope")
    gc.collect()


def test_freed_handle_is_refused_by_the_library(fixture_dir):
    """The library's live-handle registry: glm5_model_get_info on a freed handle fails cleanly."""
    import ctypes

    from glm5 import _lib

    m = glm5.Model(fixture_dir)
    handle = m._handle
    m.close()
    info = _lib.new_model_info()
    assert _lib.LIB.glm5_model_get_info(handle, ctypes.byref(info)) == glm5.Status.INVALID_ARGUMENT
    assert "model" in glm5.last_error()
    assert info.vocab_size == 0


def test_pathlike_and_bytes_paths(fixture_dir):
    with glm5.Model(str(fixture_dir)) as a, glm5.Model(bytes(fixture_dir)) as b:
        assert a.info == b.info
