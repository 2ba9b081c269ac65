"""The RL surface of the C API 0.2 through the binding: the routing record and its replay, weight
updates (folder, slime delta, tensor by tensor) with their versions, saving and restoring
sessions. Everything that should be bitwise is compared with np.array_equal."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import glm5
from conftest import FIXTURES_DIR, read_model_tensors

TINY = FIXTURES_DIR / "tiny-dsa"
TINY_V2 = FIXTURES_DIR / "tiny-dsa-v2"
QUANT = FIXTURES_DIR / "glm5-quantized"
DELTAS = FIXTURES_DIR / "deltas"

# 16 tokens: more than tiny-dsa's index_topk (6), so the later ones read a real DSA selection.
SEQ = [3, 41, 7, 200, 15, 9, 77, 120, 5, 64, 31, 2, 250, 18, 99, 42]

pytestmark = pytest.mark.skipif(
    not (TINY / "config.json").is_file() or not (TINY_V2 / "config.json").is_file(),
    reason="the tiny-dsa / tiny-dsa-v2 fixtures are missing",
)


@pytest.fixture(scope="module")
def model():
    with glm5.Model(TINY, threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def v2_scores():
    with glm5.Model(TINY_V2, threads=2) as m:
        return m.score(SEQ)


def same(a, b):
    """Bitwise equal where both are numbers, NaN in the same places."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    return np.array_equal(bits(a[~np.isnan(a)]), bits(b[~np.isnan(b)]))


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if np.asarray(a).dtype == np.float32 else np.uint8)


def expect(error, fn, *args, needle=None, **kwargs):
    with pytest.raises(error) as e:
        fn(*args, **kwargs)
    if needle is not None:
        assert needle in str(e.value), str(e.value)
    return e.value


def recorded(s):
    """A recording session's tokens and everything it recorded."""
    ids, weights = s.recorded_routes()
    return s.tokens, s.recorded_topk(), ids, weights, s.record_info


def assert_recorded(s, before):
    after = recorded(s)
    assert np.array_equal(after[0], before[0])
    assert np.array_equal(after[1], before[1]) and np.array_equal(after[2], before[2])
    assert np.array_equal(bits(after[3]), bits(before[3]))
    assert after[4] == before[4]


def sampled_trajectory(m, seed=9):
    """A recording session: a 6-token prompt and 10 sampled tokens (16 in all)."""
    s = m.session(record=True)
    s.append(SEQ[:6], logits="none")
    r = s.sample(10, seed=seed, ignore_eos=True, temperature=0.9)
    assert len(r.tokens) == 10
    return s, r


# -- the record ------------------------------------------------------------------------------------


def test_record_info_and_layouts(model):
    info = model.info
    s, _ = sampled_trajectory(model)
    ri = s.record_info
    assert isinstance(ri, glm5.RecordInfo)
    assert ri.recording is True and ri.n_tokens == 16 == s.n_tokens
    assert (ri.n_layers, ri.index_topk) == (info.n_layers, info.index_topk)
    assert (ri.n_moe_layers, ri.n_experts_per_tok) == (info.n_moe_layers, info.n_experts_per_tok)
    assert ri.bytes_per_token == 4 * ri.n_layers * ri.index_topk + 8 * ri.n_moe_layers * ri.n_experts_per_tok
    assert ri.bytes >= 16 * ri.bytes_per_token and ri.max_bytes == 1 << 30
    assert ri.as_dict()["n_tokens"] == 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        ri.n_tokens = 0

    topk = s.recorded_topk()
    assert topk.dtype == np.int32 and topk.shape == (16, info.n_layers, info.index_topk)
    K = info.index_topk
    for t in range(16):
        for layer in range(info.n_layers):
            row = topk[t, layer]
            keys = row[row >= 0]
            assert (row[len(keys):] == -1).all()  # -1 only as trailing padding
            assert len(keys) == min(t + 1, K)  # every earlier key before index_topk, then K
            assert (np.diff(keys) > 0).all() and keys.min() >= 0 and keys.max() <= t
    ids, weights = s.recorded_routes()
    assert ids.dtype == np.int32 and weights.dtype == np.float32
    assert ids.shape == weights.shape == (16, info.n_moe_layers, info.n_experts_per_tok)
    assert (np.diff(ids, axis=-1) > 0).all() and ids.min() >= 0 and ids.max() < info.n_routed_experts
    assert np.isfinite(weights).all() and (weights > 0).all()

    # Ranges.
    assert np.array_equal(s.recorded_topk(9, 7), topk[9:])
    assert np.array_equal(s.recorded_topk(first=3, count=4), topk[3:7])
    assert np.array_equal(s.recorded_topk(count=2), topk[:2])
    assert s.recorded_topk(16).shape == (0, info.n_layers, K)
    i2, w2 = s.recorded_routes(first=5, count=3)
    assert np.array_equal(i2, ids[5:8]) and np.array_equal(bits(w2), bits(weights[5:8]))
    expect(glm5.InvalidArgumentError, s.recorded_topk, 10, 7, needle="beyond the 16 recorded")
    expect(glm5.InvalidArgumentError, s.recorded_routes, 17, needle="beyond the 16 recorded")
    expect(glm5.InvalidArgumentError, s.recorded_topk, -1)
    expect(TypeError, s.recorded_topk, 1.5)
    expect(TypeError, s.recorded_routes, 0, "3")


def test_records_of_sampling_equal_scoring(model):
    """What a sampled trajectory records equals what teacher-forcing it afterwards records."""
    a, r = sampled_trajectory(model)
    b = model.session(record=True)
    _, lps = b.append_with_logprobs(a.tokens)
    assert np.array_equal(bits(lps[6:]), bits(r.logprobs))
    assert_recorded(b, recorded(a))
    # In pieces, and through append_scaled, too.
    c = model.session(record=True)
    c.append(a.tokens[:5], logits="none")
    c.append_scaled(a.tokens[5:11], temperature=0.9)
    c.append_with_logprobs(a.tokens[11:])
    assert_recorded(c, recorded(a))


def test_record_follows_truncate_and_fork(model):
    s, _ = sampled_trajectory(model)
    full = recorded(s)
    f = s.fork()
    assert_recorded(f, full)
    s.truncate(8)
    assert s.record_info.n_tokens == 8
    assert np.array_equal(s.recorded_topk(), full[1][:8])
    assert np.array_equal(s.recorded_routes()[0], full[2][:8])
    s.append(full[0][8:], logits="none")  # the same tokens again: the same record
    assert_recorded(s, full)


def test_a_session_without_record(model):
    with model.session() as s:
        s.append(SEQ[:4], logits="none")
        ri = s.record_info
        assert ri.recording is False and ri.n_tokens == 0 and ri.bytes == 0 and ri.max_bytes == 0
        expect(glm5.InvalidArgumentError, s.recorded_topk, needle="does not record")
        expect(glm5.InvalidArgumentError, s.recorded_routes, needle="does not record")
    expect(glm5.InvalidArgumentError, model.session, record_max_bytes=1 << 20, needle="record is False")
    expect(TypeError, model.session, record="yes")
    expect(TypeError, model.session, record=True, record_max_bytes=1.5)
    expect(glm5.InvalidArgumentError, model.session, record=True, record_max_bytes=-1)
    with model.session(record=True, record_max_bytes=0) as s:  # 0: the default bound
        assert s.record_info.max_bytes == 1 << 30 and s.record_info.recording


def test_record_full(model):
    bpt = model.session(record=True).record_info.bytes_per_token
    assert bpt > 0
    s = model.session(record=True, record_max_bytes=4 * bpt)
    assert s.record_info.max_bytes == 4 * bpt
    e = expect(glm5.RecordFullError, s.append, SEQ[:5], needle="record bound")
    assert e.status == glm5.Status.RECORD_FULL and isinstance(e, glm5.Glm5Error)
    assert s.n_tokens == 0 and s.record_info.n_tokens == 0
    s.append(SEQ[:4], logits="none")
    before = recorded(s)
    expect(glm5.RecordFullError, s.append, SEQ[4:5])
    expect(glm5.RecordFullError, s.append_with_logprobs, SEQ[4:5])
    expect(glm5.RecordFullError, s.sample, 1, seed=1)
    assert s.n_tokens == 4
    assert_recorded(s, before)
    s.truncate(3)  # room again
    s.append(SEQ[3:4], logits="none")
    assert_recorded(s, before)


# -- replay ----------------------------------------------------------------------------------------


def test_replay_through_score_reproduces_logprobs(model):
    s, r = sampled_trajectory(model)
    toks, topk, ids, weights, _ = recorded(s)
    plain = model.score(toks)
    assert np.isnan(plain[0]) and not np.isnan(plain[1:]).any()
    assert np.array_equal(bits(plain[6:]), bits(r.logprobs))
    for kw in [
        dict(replay_topk=topk, replay_routes=(ids, weights)),
        dict(replay_topk=topk, replay_routes=ids),  # ids only: the router weighs them
        dict(replay_topk=topk, replay_routes=(ids, None)),
        dict(replay_topk=topk),
        dict(replay_routes=(ids, weights)),
        dict(replay_routes=ids),
        dict(replay_topk=topk.tolist(), replay_routes=(ids.astype(np.int64), weights.astype(np.float64))),
    ]:
        got = model.score(toks, **kw)
        assert got.dtype == np.float32 and got.shape == (16,)
        assert np.isnan(got[0])
        assert np.array_equal(got[1:], plain[1:]), list(kw)
    # At a temperature, replay reproduces the scaled logprobs the sampler reported.
    got = model.score(toks, temperature=0.9, replay_topk=topk, replay_routes=ids)
    assert np.array_equal(bits(got[6:]), bits(r.scaled_logprobs))
    assert same(got, model.score(toks, temperature=0.9))


def test_replay_through_session_appends(model):
    s, r = sampled_trajectory(model)
    toks, topk, ids, weights, _ = recorded(s)
    plain = model.score(toks)
    b = model.session(record=True)
    _, lp1 = b.append_with_logprobs(toks[:9], replay_topk=topk[:9], replay_routes=ids[:9])
    raw, scaled = b.append_scaled(toks[9:14], 0.9, replay_topk=topk[9:14], replay_routes=(ids[9:14], weights[9:14]))
    last = b.append(toks[14:], logits="last", replay_topk=topk[14:], replay_routes=ids[14:])
    assert same(np.concatenate([lp1, raw]), plain[:14])
    assert np.array_equal(bits(scaled), bits(model.score(toks, temperature=0.9)[9:14]))
    assert last.shape == (model.info.vocab_size,)
    with model.session() as c:
        assert np.array_equal(bits(last), bits(c.append(toks)))
    # Recording while replaying records what was replayed.
    assert_recorded(b, recorded(s))


def test_replaying_another_selection_changes_logprobs(model):
    s, _ = sampled_trajectory(model)
    toks, topk, ids, weights, _ = recorded(s)
    plain = model.score(toks)

    # Token 14 reads other keys on layer 1: only the logprob of token 15 (predicted at 14) moves.
    other = topk.copy()
    other[14, 1] = [0, 1, 2, 3, 4, 5]
    assert not np.array_equal(other[14, 1], topk[14, 1])
    got = model.score(toks, replay_topk=other)
    assert np.array_equal(got[1:15], plain[1:15]) and got[15] != plain[15]

    # Token 10 goes to other experts on the first MoE layer: nothing before it changes.
    routes = ids.copy()
    k = model.info.n_experts_per_tok
    routes[10, 0] = np.setdiff1d(np.arange(model.info.n_routed_experts), ids[10, 0])[:k]
    got = model.score(toks, replay_routes=routes)
    assert np.array_equal(got[1:11], plain[1:11]) and got[11] != plain[11]
    # The router weighs replayed ids itself: a session that records them records its weights.
    with model.session(record=True) as c:
        c.append(toks, logits="none", replay_routes=routes)
        assert np.array_equal(c.recorded_routes()[0], routes)
        assert np.array_equal(c.recorded_topk()[:10], topk[:10])

    # Other weights for the same experts.
    got = model.score(toks, replay_routes=(ids, weights * 2))
    assert not np.array_equal(got[1:], plain[1:])


def test_bad_replay_is_refused_and_changes_nothing(model):
    s, _ = sampled_trajectory(model)
    toks, topk, ids, weights, _ = recorded(s)
    L, K, M, k = topk.shape[1], topk.shape[2], ids.shape[1], ids.shape[2]
    target = model.session(record=True)
    target.append(toks[:5], logits="last")

    def state():
        return target.n_tokens, target.tokens, target.logits(), recorded(target)

    before = state()
    rest = toks[5:]
    n = len(rest)

    def refused(error, needle=None, **kw):
        for call in (
            lambda: target.append(rest, **kw),
            lambda: target.append_with_logprobs(rest, **kw),
            lambda: target.append_scaled(rest, 0.9, **kw),
        ):
            expect(error, call, needle=needle)
        after = state()
        assert after[0] == before[0] and np.array_equal(after[1], before[1])
        assert np.array_equal(bits(after[2]), bits(before[2]))
        assert_recorded(target, before[3])

    # Shapes: checked here, naming the expected one.
    refused(glm5.InvalidArgumentError, f"expected ({n}, {L}, {K})", replay_topk=topk)  # all 16 rows for 11 tokens
    refused(glm5.InvalidArgumentError, f"expected ({n}, {L}, {K})", replay_topk=topk[5:, :, :-1])
    refused(glm5.InvalidArgumentError, "[tokens, n_layers, index_topk]", replay_topk=topk[5:].reshape(n, -1))
    refused(glm5.InvalidArgumentError, f"expected ({n}, {M}, {k})", replay_routes=ids[4:])
    refused(glm5.InvalidArgumentError, f"expected ({n}, {M}, {k})", replay_routes=(ids[5:], weights[5:, :1]))
    refused(glm5.InvalidArgumentError, "rectangular", replay_topk=[[[0]], [[0, 1]]])
    # Types.
    refused(TypeError, "integer dtype", replay_topk=topk[5:].astype(np.float32))
    refused(TypeError, "integer dtype", replay_topk=topk[5:] >= 0)
    refused(TypeError, "integer dtype", replay_routes=ids[5:].astype(np.float64))
    refused(TypeError, "floating dtype", replay_routes=(ids[5:], np.ones(ids[5:].shape, np.int32)))
    refused(TypeError, "tuple (ids, weights)", replay_routes=(ids[5:], weights[5:], None))
    refused(TypeError, None, replay_topk="keys")
    big = topk[5:].astype(np.int64)
    big[2, 1, 0] = 2**31
    refused(glm5.InvalidArgumentError, "replay_topk[2, 1, 0] is 2147483648, outside int32", replay_topk=big)
    # Values: checked by the library, naming the token, layer and entry.
    bad = topk[5:].copy()
    bad[0, 0, 0] = 100
    refused(glm5.InvalidArgumentError, "replay_topk[0, 0, 0] is key 100", replay_topk=bad)
    bad = topk[5:].copy()
    bad[3, 2] = bad[3, 2][::-1]
    refused(glm5.InvalidArgumentError, "strictly ascending", replay_topk=bad)
    bad = topk[5:].copy()
    bad[1, 1] = -1
    refused(glm5.InvalidArgumentError, "selects no key", replay_topk=bad)
    bad = ids[5:].copy()
    bad[2, 1, -1] = 999
    refused(glm5.InvalidArgumentError, "outside [0,", replay_routes=bad)
    bad = ids[5:].copy()
    bad[2, 0, 1] = bad[2, 0, 0]
    refused(glm5.InvalidArgumentError, "strictly ascending", replay_routes=bad)
    w = weights[5:].copy()
    w[0, 0, 0] = np.nan
    refused(glm5.InvalidArgumentError, "must be finite", replay_routes=(ids[5:], w))
    refused(glm5.InvalidArgumentError, "expert_ids is NULL", replay_routes=(None, weights[5:]))

    # The same through Model.score (nothing to change there, but the same refusals).
    expect(glm5.InvalidArgumentError, model.score, toks, replay_topk=topk[1:], needle="expected (16,")
    expect(TypeError, model.score, toks, replay_routes=ids.astype(np.float32))
    bad = topk.copy()
    bad[5, 1, 0] = 6
    expect(glm5.InvalidArgumentError, model.score, toks, replay_topk=bad, needle="token 5 is at position 5")
    # Still usable, and the replay that is right still works.
    _, lp = target.append_with_logprobs(rest, replay_topk=topk[5:], replay_routes=ids[5:])
    assert same(lp, model.score(toks)[5:])


# -- weight updates --------------------------------------------------------------------------------


def tensor_update(folder):
    """Every tensor of a model folder as update_tensors takes it: (arrays, dtype per name)."""
    tensors = read_model_tensors(folder)
    arrays = {name: a for name, (_, a) in tensors.items()}
    dtypes = {name: "bf16" for name, (d, _) in tensors.items() if d == "BF16"}
    return arrays, dtypes


UPDATE_PATHS = [
    "folder", "tensors", "tensors-stream", "delta-deltas", "delta-deltas_zstd", "delta-indices", "delta-named"
]


def apply_update(m, how):
    """Update m (tiny-dsa) to tiny-dsa-v2 by one path; the weight version it should then have."""
    if how == "folder":
        m.update_weights(TINY_V2, "v2")
        return "v2"
    if how.startswith("tensors"):
        arrays, dtypes = tensor_update(TINY_V2)
        assert not dtypes  # all F32
        m.update_tensors(iter(arrays.items()) if how == "tensors-stream" else arrays, "v2-tensors")
        return "v2-tensors"
    if how == "delta-named":
        m.update_weights_delta(DELTAS / "tiny-dsa-v2.deltas_zstd" / "weight_v000001", "step-1")
        return "step-1"
    m.update_weights_delta(DELTAS / f"tiny-dsa-v2.{how[len('delta-'):]}" / "weight_v000001")
    return "1"  # the delta's current_version


@pytest.mark.parametrize("how", UPDATE_PATHS)
def test_every_update_path_equals_a_fresh_load(how, v2_scores):
    with glm5.Model(TINY, threads=2) as m:
        before = m.score(SEQ)
        assert not np.array_equal(before[1:], v2_scores[1:])
        assert m.weight_version == "default"
        info0 = m.info
        assert (info0.n_weight_updates, info0.updated_weight_bytes) == (0, 0)
        s = m.session()
        s.append(SEQ[:4], logits="none")
        assert s.sample(2, seed=1, ignore_eos=True).weight_version == "default"

        version = apply_update(m, how)
        assert m.weight_version == version
        assert np.array_equal(bits(m.score(SEQ)), bits(v2_scores))
        info = m.info
        assert info.n_weight_updates == 1
        if how == "folder":  # the same dtypes and shapes: adopted as it is, memory-mapped
            assert info.updated_weight_bytes == 0
        else:
            assert info.updated_weight_bytes > 0
            assert info.resident_weight_bytes >= info.updated_weight_bytes
        # A session made before the update samples with the new weights and says so.
        r = s.sample(3, seed=1, ignore_eos=True)
        assert r.weight_version == version
        with m.session() as fresh:
            fresh.append(SEQ[:2], logits="none")
            assert [x.weight_version for x in m.sample_batch([s, fresh], 2, ignore_eos=True)] == [version, version]


def test_update_tensors_bf16_into_int4_equals_a_fresh_load():
    """BF16 weights streamed (as uint16 bits with dtype="bf16") into an INT4 model are quantized
    as `glm5 quantize` did them: the result is the quantized checkpoint bit for bit."""
    if not (QUANT / "int4" / "config.json").is_file():
        pytest.skip("glm5-quantized fixtures missing")
    seq = [t % 128 for t in SEQ]
    with glm5.Model(QUANT / "int4", threads=2) as fresh, glm5.Model(QUANT / "int4", threads=2) as m:
        want = fresh.score(seq)
        m.update_weights(QUANT / "source-v2", "v2")  # other BF16 weights, converted to INT4
        assert "int4_group" in m.info.weight_formats
        assert not np.array_equal(m.score(seq)[1:], want[1:])
        arrays, dtypes = tensor_update(QUANT / "source")
        assert dtypes and all(arrays[n].dtype == np.uint16 for n in dtypes)
        expect(TypeError, m.update_tensors, arrays, "no-dtype", needle='dtype="bf16"')  # uint16 is ambiguous
        m.update_tensors(arrays, "source", dtype=dtypes)
        assert m.weight_version == "source"
        assert np.array_equal(bits(m.score(seq)), bits(want))
        assert m.info.n_weight_updates == 2
        # One dtype for all: the F32 tensors are not BF16, so that is refused here, not sent.
        expect(TypeError, m.update_tensors, arrays, "all-bf16", dtype="bf16", needle="cannot be sent as BF16")
        bf16_only = {n: arrays[n] for n in dtypes}
        m.update_tensors(bf16_only, "bf16-only", dtype="BF16")
        m.update_tensors(bf16_only, "bf16-enum", dtype=glm5.DType.BF16)
        assert np.array_equal(bits(m.score(seq)), bits(want))
        assert m.weight_version == "bf16-enum"


def model_state(m):
    info = m.info
    return m.score(SEQ), m.weight_version, info.n_weight_updates, info.updated_weight_bytes, info.resident_weight_bytes


def assert_model_state(m, before):
    after = model_state(m)
    assert np.array_equal(bits(after[0]), bits(before[0]))
    assert after[1:] == before[1:]


def test_refused_updates_change_nothing(v2_scores):
    v2 = read_model_tensors(TINY_V2)
    good = {"model.norm.weight": v2["model.norm.weight"][1]}
    with glm5.Model(TINY, threads=2) as m:
        s = m.session()
        s.append(SEQ[:5], logits="none")
        for step in range(2):  # on the loaded weights, then after an update
            before = model_state(m)

            def refused(error, fn, *args, needle=None, **kw):
                expect(error, fn, *args, needle=needle, **kw)
                assert_model_state(m, before)

            norm = good["model.norm.weight"]
            # Tensors: a wrong shape, an unknown name, a wrong dtype; after good ones (atomic).
            short = {**good, "model.norm.weight": norm[:-1]}
            refused(glm5.BadFormatError, m.update_tensors, short, "x", needle="shape")
            refused(glm5.BadFormatError, m.update_tensors, {"lm_head.weight": v2["lm_head.weight"][1].T.copy()}, "x")
            unknown = {**good, "no.such.tensor": norm}
            refused(glm5.InvalidArgumentError, m.update_tensors, unknown, "x", needle="no tensor")
            refused(glm5.BadFormatError, m.update_tensors, {"model.norm.weight": norm.astype(np.int32)}, "x")
            refused(glm5.InvalidArgumentError, m.update_tensors, {}, "x", needle="holds no tensor")
            refused(TypeError, m.update_tensors, {"model.norm.weight": norm.astype(np.uint16)}, "x")
            refused(TypeError, m.update_tensors, {"model.norm.weight": norm}, "x", dtype="f16")
            refused(TypeError, m.update_tensors, {"model.norm.weight": norm.tolist()}, "x")
            refused(TypeError, m.update_tensors, {"model.norm.weight": norm.astype(object)}, "x")
            refused(TypeError, m.update_tensors, {1: norm}, "x")
            refused(TypeError, m.update_tensors, [("model.norm.weight", norm, 1)], "x")
            refused(TypeError, m.update_tensors, "model.norm.weight", "x")
            refused(TypeError, m.update_tensors, good, "x", dtype=3.5)
            refused(glm5.InvalidArgumentError, m.update_tensors, good, "x", dtype="f33", needle="not a glm5 dtype")
            refused(glm5.InvalidArgumentError, m.update_tensors, good, "x", dtype={"other": "f32"}, needle="'other'")
            refused(glm5.InvalidArgumentError, m.update_tensors, {"model.norm\0.weight": norm}, "x", needle="NUL")
            # Versions.
            refused(glm5.InvalidArgumentError, m.update_tensors, good, "", needle="weight version")
            refused(glm5.InvalidArgumentError, m.update_weights, TINY_V2, "x" * 128, needle="1 to 127 bytes")
            refused(glm5.InvalidArgumentError, m.update_weights, TINY_V2, "a\0b", needle="NUL")
            refused(TypeError, m.update_weights, TINY_V2, None)
            refused(TypeError, m.update_weights, TINY_V2, b"v")
            refused(TypeError, m.update_weights_delta, DELTAS / "tiny-dsa-v2.deltas" / "weight_v000001", 1)
            # Folders: another configuration, missing, not a model.
            int4 = FIXTURES_DIR / "tiny-int4-g32"
            refused(glm5.IncompatibleError, m.update_weights, int4, "x", needle="another configuration")
            refused(glm5.IncompatibleError, m.update_weights, QUANT / "int4", "x")
            refused(glm5.IoError, m.update_weights, FIXTURES_DIR / "nonexistent", "x")
            refused(TypeError, m.update_weights, 5, "x")
            # Deltas: not against the loaded version, incomplete, for another model.
            if step == 1:
                again = DELTAS / "tiny-dsa-v2.deltas" / "weight_v000001"
                refused(glm5.VersionMismatchError, m.update_weights_delta, again, needle='"default"')
            refused(glm5.BadFormatError, m.update_weights_delta, DELTAS / "tiny-dsa-v2.deltas", needle="DONE")
            # (these are deltas against "default": after the update, that is what is refused first)
            foreign = glm5.BadFormatError if step == 0 else glm5.VersionMismatchError
            refused(foreign, m.update_weights_delta, DELTAS / "tiny-int4-g32-v2.deltas" / "weight_v000001")
            refused(foreign, m.update_weights_delta, DELTAS / "gap-u32.deltas" / "weight_v000001")
            refused(glm5.IoError, m.update_weights_delta, DELTAS / "nonexistent")
            # The session made before is untouched by all this.
            assert s.n_tokens == 5
            if step == 0:
                m.update_weights_delta(DELTAS / "tiny-dsa-v2.deltas" / "weight_v000001")
                assert m.weight_version == "1"
                assert np.array_equal(bits(m.score(SEQ)), bits(v2_scores))


def test_dtype_inference_and_naming():
    from glm5._model import _tensor_arg

    D = glm5.DType
    for arr, want in [
        (np.zeros(2, np.float32), D.F32),
        (np.zeros(2, np.float16), D.F16),
        (np.zeros(2, np.int32), D.I32),
        (np.zeros(2, np.int64), D.I64),
        (np.zeros(2, np.uint8), D.U8),
        (np.zeros(2, ">f4"), D.F32),
    ]:
        name, dt, data = _tensor_arg("t", arr, None)
        assert (name, dt) == (b"t", want)
        assert data.flags.c_contiguous and data.dtype.byteorder in "=|<"
    big = np.arange(3, dtype=">i4")
    assert _tensor_arg("t", big, None)[2].tobytes() == np.arange(3, dtype="<i4").tobytes()
    strided = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    data = _tensor_arg("t", strided, None)[2]
    assert data.flags.c_contiguous and np.array_equal(data, strided)
    for spec in ("bf16", "BF16", "bfloat16", D.BF16):
        assert _tensor_arg("t", np.zeros(2, np.uint16), spec)[1] == D.BF16
    assert _tensor_arg("t", np.zeros(2, np.uint16), "u16")[1] == D.U16
    assert _tensor_arg("t", np.zeros(2, np.uint8), "f8_e4m3")[1] == D.F8_E4M3
    assert _tensor_arg("t", np.zeros(2, np.float32), "float32")[1] == D.F32
    expect(TypeError, _tensor_arg, "t", np.zeros(2, np.uint16), None, needle="BF16 or U16")
    expect(TypeError, _tensor_arg, "t", np.zeros(2, np.float16), "bf16", needle="uint16")
    expect(TypeError, _tensor_arg, "t", np.zeros(2, np.int16), "bf16")
    expect(TypeError, _tensor_arg, "t", np.zeros(2, np.float32), "i32")
    expect(TypeError, _tensor_arg, "t", np.zeros(2, np.complex64), None)


def test_updates_while_scoring_never_mix_weights(v2_scores):
    """A call in flight finishes on the weights it started with: every score is v1's or v2's."""
    with glm5.Model(TINY, threads=2) as m:
        v1_scores = m.score(SEQ)
        seen, errors, stop = set(), [], threading.Event()

        def score():
            try:
                while not stop.is_set():
                    got = bits(m.score(SEQ)).tobytes()
                    assert got in (bits(v1_scores).tobytes(), bits(v2_scores).tobytes())
                    seen.add(got)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        t = threading.Thread(target=score)
        t.start()
        try:
            for i in range(6):
                m.update_weights(TINY_V2 if i % 2 == 0 else TINY, f"u{i}")
        finally:
            stop.set()
            t.join()
        assert not errors, errors
        assert m.weight_version == "u5" and m.info.n_weight_updates == 6
        assert np.array_equal(bits(m.score(SEQ)), bits(v1_scores))


def test_recompute_after_an_update(v2_scores):
    with glm5.Model(TINY, threads=2) as m:
        kept, rebuilt = m.session(record=True), m.session(record=True)
        for s in (kept, rebuilt):
            s.append(SEQ[:8], logits="none")
        m.update_weights(TINY_V2, "v2")
        rebuilt.recompute()
        _, lp_rebuilt = rebuilt.append_with_logprobs(SEQ[8:])
        _, lp_kept = kept.append_with_logprobs(SEQ[8:])
        # Recomputed: as a new session on the new weights. Kept: the old caches are still there.
        assert np.array_equal(bits(lp_rebuilt), bits(v2_scores[8:]))
        assert not np.array_equal(lp_kept, v2_scores[8:])
        with m.session(record=True) as fresh:
            fresh.append(SEQ, logits="none")
            assert_recorded(rebuilt, recorded(fresh))
        kept.close()
        expect(glm5.InvalidArgumentError, kept.recompute, needle="closed")


# -- saving sessions -------------------------------------------------------------------------------


def continue_both(a, b, n=6, seed=4):
    ra = a.sample(n, seed=seed, ignore_eos=True, top_logprobs=3)
    rb = b.sample(n, seed=seed, ignore_eos=True, top_logprobs=3)
    assert np.array_equal(ra.tokens, rb.tokens)
    for field in ("logprobs", "scaled_logprobs", "processed_logprobs", "top_logprobs"):
        assert np.array_equal(bits(getattr(ra, field)), bits(getattr(rb, field))), field
    assert ra.weight_version == rb.weight_version
    return ra


def test_save_restore_continues_as_the_original(model, tmp_path):
    s, _ = sampled_trajectory(model)
    data = s.save()
    assert isinstance(data, bytes) and len(data) > 64
    path = tmp_path / "s.glm5"
    n = s.save(path)
    assert n == os.path.getsize(path) == len(data) and path.read_bytes() == data
    assert s.save(str(tmp_path / "t.glm5")) == n

    restored = [
        model.restore(data),
        model.restore(bytearray(data)),
        model.restore(memoryview(data)),
        model.restore(np.frombuffer(data, dtype=np.uint8)),
        model.restore(path),
        model.restore(str(path)),
    ]
    with glm5.Model(TINY, threads=1) as replica:  # another replica with the same weights
        restored.append(replica.restore(data))
        before = recorded(s)
        for r in restored:
            assert isinstance(r, glm5.Session)
            assert np.array_equal(r.tokens, s.tokens)
            assert_recorded(r, before)
            assert r.max_tokens == s.max_tokens
        originals = [s.fork() for _ in restored]
        for o, r in zip(originals, restored):
            continue_both(o, r)
            assert_recorded(r, recorded(o))
    # A session without a record, with a max_tokens: restored as it was (the bound still holds).
    with model.session(max_tokens=10) as p:
        p.append(SEQ[:8], logits="none")
        q = model.restore(p.save())
        assert q.max_tokens == 10
        assert q.record_info.recording is False
        expect(glm5.ContextFullError, q.append, SEQ[:3])
        q.append(SEQ[:2], logits="none")
        assert np.array_equal(q.tokens, SEQ[:8] + SEQ[:2])


def test_restore_refuses_damaged_and_foreign_bytes(model, tmp_path):
    s, _ = sampled_trajectory(model)
    data = s.save()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    expect(glm5.BadFormatError, model.restore, bytes(flipped), needle="checksum")
    expect(glm5.BadFormatError, model.restore, data[:-1])
    expect(glm5.BadFormatError, model.restore, data[:3], needle="truncated")
    expect(glm5.BadFormatError, model.restore, b"")
    expect(glm5.BadFormatError, model.restore, b"\0" * len(data))
    (tmp_path / "bad.glm5").write_bytes(bytes(flipped))
    expect(glm5.BadFormatError, model.restore, tmp_path / "bad.glm5")
    expect(glm5.IoError, model.restore, tmp_path / "nonexistent.glm5", needle="nonexistent")
    expect(TypeError, model.restore, 5)
    expect(TypeError, model.restore, None)
    expect(TypeError, model.restore, [1, 2, 3])
    expect(glm5.InvalidArgumentError, model.restore, str(tmp_path / "a\0b"), needle="NUL")
    expect(glm5.InvalidArgumentError, s.save, str(tmp_path / "a\0b"), needle="NUL")
    expect(TypeError, s.save, 5)
    expect(glm5.IoError, s.save, tmp_path / "no" / "such" / "dir" / "s.glm5")
    with glm5.Model(FIXTURES_DIR / "tiny-int4-g32", threads=2) as other:
        expect(glm5.IncompatibleError, other.restore, data, needle="another model configuration")
    s.close()
    expect(glm5.InvalidArgumentError, s.save, needle="closed")


def test_restore_under_another_weight_version(tmp_path):
    with glm5.Model(TINY, threads=2) as m:
        s, _ = sampled_trajectory(m)
        data = s.save()
        s.save(tmp_path / "s.glm5")
        m.update_weights(TINY_V2, "v2")
        e = expect(glm5.VersionMismatchError, m.restore, data, needle='"default"')
        assert e.status == glm5.Status.VERSION_MISMATCH and '"v2"' in e.message
        expect(glm5.VersionMismatchError, m.restore, tmp_path / "s.glm5")
        expect(TypeError, m.restore, data, allow_other_version="yes")
        # Allowed: the caches are what the old weights computed, exactly as the original's are.
        r = m.restore(data, allow_other_version=True)
        r2 = m.restore(tmp_path / "s.glm5", allow_other_version=True)
        assert continue_both(s.fork(), r).weight_version == "v2"
        continue_both(s.fork(), r2)
        # Saved under v2, restored under v2.
        again = m.restore(r.save())
        continue_both(r, again)
