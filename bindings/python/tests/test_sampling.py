"""Sampling: the header's sampler reproduced in Python, scoring, fork, batches, stop, cancel, threads.

The reference (sampling_reference.py) is written from include/glm5.h alone; the library must give
exactly its tokens, and its logprobs to rounding. Everything the library promises bitwise (batch
= alone, any order, any thread count; sampled = scored; fork = original) is compared bitwise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time

import numpy as np
import pytest

import glm5
from conftest import FIXTURES_DIR, fixture_dirs
from sampling_reference import Distribution, philox4x32_10, uniform

TOL = 1e-5


def api_fixture():
    """tiny-dsa (vocab 320, eos id 1), else the first fixture."""
    d = FIXTURES_DIR / "tiny-dsa"
    if (d / "config.json").is_file():
        return d
    dirs = fixture_dirs()
    return dirs[0] if dirs else d


@pytest.fixture(scope="module")
def model():
    with glm5.Model(api_fixture(), threads=2) as m:
        yield m


def ids_for(m, n, mul=7, add=3):
    v = m.info.vocab_size
    return [(i * mul + add) % v for i in range(n)]


def session_with(m, prompt, max_tokens=None):
    s = m.session(max_tokens=max_tokens)
    s.append(prompt, logits="none")
    return s


def bits(a):
    """A float32 array's bit patterns (so that -0.0 != 0.0 and NaN == NaN of the same payload)."""
    a = np.asarray(a)
    assert a.dtype == np.float32, a.dtype
    return a.view(np.uint32)


def assert_same(a: glm5.SampleResult, b: glm5.SampleResult, what=""):
    """Bitwise equality of two sampling results, every field."""
    assert np.array_equal(a.tokens, b.tokens), (what, a.tokens, b.tokens)
    for f in ("logprobs", "scaled_logprobs", "processed_logprobs"):
        assert np.array_equal(bits(getattr(a, f)), bits(getattr(b, f))), (what, f)
    assert a.finish_reason == b.finish_reason, (what, a.finish_reason, b.finish_reason)
    assert a.stop_token_id == b.stop_token_id, what
    for f in ("top_ids", "top_logprobs"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), (what, f)
        if x is not None:
            assert x.shape == y.shape and x.dtype == y.dtype, (what, f)
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), (what, f)


def assert_prefix(r: glm5.SampleResult, full: glm5.SampleResult, k: int):
    """The first k tokens of `full`, bitwise, are those of `r`."""
    assert len(r.tokens) == k
    assert np.array_equal(r.tokens, full.tokens[:k])
    for f in ("logprobs", "scaled_logprobs", "processed_logprobs"):
        assert np.array_equal(bits(getattr(r, f)), bits(getattr(full, f)[:k])), f
    if full.top_ids is not None:
        assert np.array_equal(r.top_ids, full.top_ids[:k])
        assert np.array_equal(bits(r.top_logprobs), bits(full.top_logprobs[:k]))


def expect(error, fn, *args, needle=None, **kwargs):
    with pytest.raises(error) as e:
        fn(*args, **kwargs)
    if needle is not None:
        assert needle in e.value.message, e.value.message
    return e.value


def filters(p):
    return {k: p[k] for k in ("temperature", "top_k", "top_p", "min_p") if k in p}


# -- the reference itself -------------------------------------------------------------------------


def test_philox_known_answers():
    """Random123's known-answer vectors for philox4x32-10 (kat_vectors). numpy.random.Philox
    cannot serve here: it is Philox4x64-10, another generator."""
    m = 0xFFFFFFFF
    assert philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox4x32_10((m, m, m, m), (m, m)) == (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert philox4x32_10((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) == (
        0xD16CFE09,
        0x94FDCCEB,
        0x5001E420,
        0x24126EA1,
    )
    # u is 53 bits of (x1 << 32 | x0), in [0, 1), and depends on both halves of seed and pos.
    x0, x1, _, _ = philox4x32_10((0, 0, 0, 0), (0, 0))
    assert uniform(0, 0) == ((x1 << 32 | x0) >> 11) / 2**53
    values = {uniform(seed, pos) for seed in (0, 1, 2**32, 2**64 - 1) for pos in (0, 1, 2**32)}
    assert len(values) == 12 and all(0 <= u < 1 for u in values)


def test_reference_distribution_rules():
    """The reference's filters on a hand-made row: p ~ e^l = [0.028, 0.554, 0.204, 0.204, 0.010]."""
    logits = np.array([0, 3, 2, 2, -1], dtype=np.float32)
    d = Distribution(logits)
    assert d.order == [1, 2, 3, 0, 4]  # ties by lower id
    assert d.kept == [0, 1, 2, 3, 4]
    assert Distribution(logits, top_k=2).kept == [1, 2]
    assert Distribution(logits, top_p=0.5).kept == [1]  # the crossing token itself is kept
    assert Distribution(logits, top_p=0.6).kept == [1, 2]
    assert Distribution(logits, top_p=0.9).kept == [1, 2, 3]
    assert Distribution(logits, min_p=0.3).kept == [1, 2, 3]
    assert Distribution(logits, min_p=0.4).kept == [1]
    assert Distribution(logits, top_k=4, top_p=0.97, min_p=0.01).kept == [0, 1, 2, 3]
    assert Distribution(logits, temperature=0).draw(5, 5) == 1
    assert Distribution(logits, temperature=0).processed_logprob(1) == 0
    # the draw: the first token whose cumulative weight (ascending ids) exceeds u * W
    d = Distribution(logits, top_k=2)
    for seed in range(20):
        u = uniform(seed, 3)
        assert d.draw(seed, 3) == (1 if u * d.big_w < d.w[1] else 2)
    with_nan = logits.copy()
    with_nan[0] = np.nan
    d = Distribution(with_nan)
    assert d.order[-1] == 0 and d.w[0] == 0
    assert all(d.draw(seed, 3) != 0 for seed in range(200))


# -- 1. the library draws exactly what the header specifies --------------------------------------

PARAM_SETS = [
    dict(seed=0),
    dict(seed=1, temperature=0.7),
    dict(seed=2, temperature=1.3, top_k=20),
    dict(seed=3, top_p=0.5),
    dict(seed=4, temperature=0.8, top_k=40, top_p=0.9, min_p=0.05),
    dict(seed=5, min_p=0.5),
    dict(seed=2**64 - 1, temperature=2.0, top_k=3),
    dict(seed=12345678901234, temperature=0.25, top_p=0.95, min_p=0.1),
    dict(seed=7, top_k=1),
    dict(seed=2**32 + 5, top_p=0.01),
]


def check_step(r, i, dist, want_token, n_top):
    assert int(r.tokens[i]) == want_token
    assert abs(float(r.logprobs[i]) - dist.raw_logprob(want_token)) <= TOL
    assert abs(float(r.scaled_logprobs[i]) - dist.scaled_logprob(want_token)) <= TOL
    assert abs(float(r.processed_logprobs[i]) - dist.processed_logprob(want_token)) <= TOL
    if n_top:
        ids, lps = dist.top(n_top)
        assert r.top_ids[i].tolist() == ids
        assert np.max(np.abs(r.top_logprobs[i].astype(np.float64) - lps)) <= TOL


@pytest.mark.parametrize("p", PARAM_SETS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_one_token_matches_the_reference(model, p):
    eos = model.eos_token_ids
    for prompt in (ids_for(model, 1), ids_for(model, 5, mul=11), ids_for(model, 17, mul=3, add=8)):
        with model.session() as s:
            logits = s.append(prompt, logits="last")
            dist = Distribution(logits, **filters(p))
            want = dist.draw(p["seed"], len(prompt))
            r = s.sample(1, top_logprobs=5, **p)
            assert len(r.tokens) == 1
            check_step(r, 0, dist, want, 5)
            assert r.finish_reason == ("stop" if want in eos else "length")
            assert r.stop_token_id == (want if want in eos else None)
            assert s.n_tokens == len(prompt) + 1 and int(s.tokens[-1]) == want


@pytest.mark.parametrize("p", PARAM_SETS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_consecutive_tokens_match_the_reference(model, p):
    prompt = ids_for(model, 6, mul=13, add=2)
    n = 10
    with session_with(model, prompt) as s, model.session() as t:
        r = s.sample(n, ignore_eos=True, top_logprobs=4, **p)
        assert len(r.tokens) == n and r.finish_reason == "length"
        logits = t.append(prompt, logits="last")
        for i in range(n):
            dist = Distribution(logits, **filters(p))
            check_step(r, i, dist, dist.draw(p["seed"], len(prompt) + i), 4)
            logits = t.append(r.tokens[i : i + 1], logits="last")
        assert np.array_equal(s.tokens, t.tokens)


def test_result_type(model):
    with session_with(model, ids_for(model, 4)) as s:
        r = s.sample(6, seed=3, top_logprobs=7, ignore_eos=True)
        assert isinstance(r, glm5.SampleResult)
        assert r.tokens.dtype == np.int32 and r.tokens.shape == (6,)
        for f in (r.logprobs, r.scaled_logprobs, r.processed_logprobs):
            assert f.dtype == np.float32 and f.shape == (6,)
            assert not np.isnan(f).any() and (f <= 0).all()
        assert r.top_ids.dtype == np.int32 and r.top_ids.shape == (6, 7)
        assert r.top_logprobs.dtype == np.float32 and r.top_logprobs.shape == (6, 7)
        assert (np.diff(r.top_logprobs, axis=1) <= 0).all()  # rank order
        assert r.finish_reason == "length" and r.stop_token_id is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.finish_reason = "stop"
        plain = s.sample(2, seed=3)
        assert plain.top_ids is None and plain.top_logprobs is None
        zero = s.sample(0)
        assert zero.tokens.shape == (0,) and zero.finish_reason == "length"
    assert glm5.MAX_TOP_LOGPROBS == 64
    assert set(glm5.SAMPLING_DEFAULTS) == {
        "temperature", "top_k", "top_p", "min_p", "seed", "stop_token_ids", "ignore_eos", "top_logprobs", "speculative"
    }


def test_defaults_are_the_header_defaults(model):
    """sample(n) is temperature 1, no filters, seed 0, eos stops: the same as spelling them out."""
    prompt = ids_for(model, 5)
    with session_with(model, prompt) as a, session_with(model, prompt) as b:
        assert_same(
            a.sample(12),
            b.sample(12, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=0, stop_token_ids=None,
                     ignore_eos=False, top_logprobs=0),
        )


# -- 2. temperature 0 is generate ------------------------------------------------------------------


def test_temperature_zero_is_generate(model):
    prompt = ids_for(model, 7, mul=5)
    with session_with(model, prompt) as g:
        ids, lp = g.generate(15)
    for kw in (dict(seed=0), dict(seed=99, top_k=5, top_p=0.3, min_p=0.2)):
        with session_with(model, prompt) as s:
            r = s.sample(15, temperature=0, ignore_eos=True, top_logprobs=3, **kw)
            assert np.array_equal(r.tokens, ids)
            assert np.array_equal(bits(r.logprobs), bits(lp))
            assert np.array_equal(bits(r.scaled_logprobs), bits(r.logprobs))
            assert (r.processed_logprobs == 0).all()
            assert np.array_equal(r.top_ids[:, 0], ids)  # the best alternative is the token
            assert np.array_equal(bits(r.top_logprobs[:, 0]), bits(lp))
            assert np.array_equal(s.tokens, np.concatenate([prompt, ids]))


# -- 3. sampled logprobs are the scored ones -------------------------------------------------------


@pytest.mark.parametrize(
    "p", [dict(temperature=0.6, seed=1), dict(temperature=1.0, seed=2, top_k=30), dict(temperature=1.7, seed=3, top_p=0.8)]
)
def test_sampled_logprobs_equal_scoring(model, p):
    prompt = ids_for(model, 9, mul=17, add=1)
    t = p["temperature"]
    with session_with(model, prompt) as s:
        r = s.sample(12, ignore_eos=True, **p)
    full = np.concatenate([prompt, r.tokens])
    n = len(prompt)
    assert np.array_equal(bits(model.score(full)[n:]), bits(r.logprobs))
    scaled = model.score(full, temperature=t)
    assert scaled.dtype == np.float32 and scaled.shape == full.shape and np.isnan(scaled[0])
    assert np.array_equal(bits(scaled[n:]), bits(r.scaled_logprobs))
    # the same from a session, in one append and in two
    with model.session() as u:
        raw, sc = u.append_scaled(full, t)
        assert raw.dtype == sc.dtype == np.float32 and raw.shape == sc.shape == full.shape
        assert np.array_equal(bits(raw), bits(model.score(full)))
        assert np.array_equal(bits(sc), bits(scaled))
    with model.session() as u:
        u.append_scaled(prompt, t)
        raw, sc = u.append_scaled(r.tokens, t, logits="last")
        assert np.array_equal(bits(raw), bits(r.logprobs)) and np.array_equal(bits(sc), bits(r.scaled_logprobs))
        assert u.logits().shape == (1, model.info.vocab_size)
        assert np.array_equal(u.tokens, full)


def test_scaled_at_temperature_zero_and_one_are_raw(model):
    ids = ids_for(model, 20, mul=3)
    raw = model.score(ids)
    assert np.array_equal(bits(model.score(ids, temperature=0)), bits(raw))
    assert np.array_equal(bits(model.score(ids, temperature=0.0)), bits(raw))
    # the raw logprob is the scaled one at temperature 1, bit for bit
    assert np.array_equal(bits(model.score(ids, temperature=1)), bits(raw))
    for t in (0, 1.0):
        with model.session() as s:
            a, b = s.append_scaled(ids, t)
            assert np.array_equal(bits(a), bits(raw)) and np.array_equal(bits(b), bits(raw))
    with session_with(model, ids) as s:
        r = s.sample(10, temperature=1.0, seed=6, top_k=25, ignore_eos=True)
        assert np.array_equal(bits(r.scaled_logprobs), bits(r.logprobs))
    # and the reference agrees with the library's scaled scoring
    with model.session() as s:
        rows = s.append(ids, logits="all")
    sc = model.score(ids, temperature=0.5)
    for i in range(1, len(ids)):
        assert abs(float(sc[i]) - Distribution(rows[i - 1], temperature=0.5).scaled_logprob(ids[i])) <= TOL


def test_append_and_append_with_logprobs_are_unchanged(model):
    ids = ids_for(model, 6)
    with model.session() as s:
        assert s.append(ids[:3]).shape == (model.info.vocab_size,)
        logits, lp = s.append_with_logprobs(ids[3:])
        assert logits is None and lp.shape == (3,)


# -- 4. fork ---------------------------------------------------------------------------------------


def test_fork_continues_as_the_original(model):
    prompt = ids_for(model, 8, mul=9)
    with model.session(max_tokens=100) as base:
        base.append(prompt, logits="last")
        f = base.fork()
        assert isinstance(f, glm5.Session) and f is not base
        assert f.n_tokens == base.n_tokens and np.array_equal(f.tokens, base.tokens)
        assert f.max_tokens == base.max_tokens == 100 and f.vocab_size == base.vocab_size
        assert f.logits().shape == (0, model.info.vocab_size)  # kept logits are not copied
        kw = dict(seed=9, temperature=0.9, top_k=50, ignore_eos=True, top_logprobs=2)
        assert_same(f.sample(10, **kw), base.sample(10, **kw))
        # after sampling too, and a fork of a fork
        g = base.fork()
        h = g.fork()
        kw2 = dict(seed=10, top_p=0.7)
        a, b, c = base.sample(6, **kw2), g.sample(6, **kw2), h.sample(6, **kw2)
        assert_same(a, b)
        assert_same(a, c)
        # independent: changing the original does not touch the fork
        n_f = f.n_tokens
        base.truncate(3)
        base.append([5, 6])
        assert f.n_tokens == n_f and np.array_equal(f.tokens[: len(prompt)], prompt)
        # the fork's caches are its own: appending to it is scoring its tokens
        _, lp = f.append_with_logprobs([4])
        assert lp[0] == model.score(np.concatenate([f.tokens[:-1], [4]]))[-1]
        # the fork is a full session: it outlives the original
        base.close()
        assert f.sample(2, seed=1, ignore_eos=True).tokens.shape == (2,)
        for x in (f, g, h):
            x.close()


def test_fork_of_a_closed_session_is_an_error(model):
    s = session_with(model, [1, 2, 3])
    s.close()
    expect(glm5.InvalidArgumentError, s.fork, needle="closed")
    expect(glm5.InvalidArgumentError, s.cancel, needle="closed")
    expect(glm5.InvalidArgumentError, s.sample, 1, needle="closed")
    expect(glm5.InvalidArgumentError, s.append_scaled, [1], 1.0, needle="closed")


def test_freed_handles_are_refused_by_fork_and_cancel(model):
    import ctypes

    from glm5 import _lib

    s = session_with(model, [1, 2, 3])
    handle = s._handle
    s.close()
    out = _lib.glm5_session_p(12345)
    assert _lib.LIB.glm5_session_fork(handle, ctypes.byref(out)) == glm5.Status.INVALID_ARGUMENT
    assert out.value == 12345  # not written
    assert _lib.LIB.glm5_session_cancel(handle) == glm5.Status.INVALID_ARGUMENT


def test_fork_of_an_empty_session(model):
    with model.session() as s, s.fork() as f:
        assert f.n_tokens == 0
        expect(glm5.InvalidArgumentError, f.sample, 1)
        f.append([1, 2])
        assert s.n_tokens == 0


# -- 5. batches ------------------------------------------------------------------------------------


def batch_specs(m):
    """(prompt, per-session params with "n"): different lengths, seeds, filters, alternatives."""
    return [
        (ids_for(m, 3), dict(n=7, seed=1, temperature=0.9)),
        (ids_for(m, 11, mul=5), dict(n=12, seed=2, top_k=10, top_logprobs=3, ignore_eos=True)),
        (ids_for(m, 1, add=9), dict(n=5, seed=3, temperature=0)),
        (ids_for(m, 20, mul=3), dict(n=9, seed=4, top_p=0.8, min_p=0.02, stop_token_ids=[7, 8, 9])),
        (ids_for(m, 6, mul=19), dict(n=1, seed=5, temperature=1.5, top_logprobs=2)),
        (ids_for(m, 14, mul=23, add=4), dict(n=16, seed=2**63 + 1, temperature=1.1, ignore_eos=True)),
    ]


def alone_results(m, specs):
    out = []
    for prompt, p in specs:
        kw = dict(p)
        n = kw.pop("n")
        with session_with(m, prompt) as s:
            r = s.sample(n, **kw)
            out.append((r, s.tokens.copy()))
    return out


@pytest.fixture(scope="module")
def model_1_thread():
    with glm5.Model(api_fixture(), threads=1) as m:
        yield m


@pytest.fixture(scope="module")
def model_3_threads():
    with glm5.Model(api_fixture(), threads=3) as m:
        yield m


@pytest.mark.parametrize("which", ["2 threads", "1 thread", "3 threads"])
def test_batch_equals_alone_in_any_order(model, model_1_thread, model_3_threads, which):
    m = {"2 threads": model, "1 thread": model_1_thread, "3 threads": model_3_threads}[which]
    specs = batch_specs(model)
    alone = alone_results(model, specs)  # always on the 2-thread model
    for order in (list(range(len(specs))), [4, 2, 0, 5, 3, 1]):
        sessions = [session_with(m, specs[i][0]) for i in order]
        results = m.sample_batch(sessions, 128, params=[specs[i][1] for i in order])
        assert len(results) == len(specs)
        for j, i in enumerate(order):
            assert_same(results[j], alone[i][0], f"session {i} at {j}")
            assert np.array_equal(sessions[j].tokens, alone[i][1])
        for s in sessions:
            s.close()


def test_batch_common_keywords_and_overrides(model):
    prompts = [ids_for(model, 4), ids_for(model, 9, mul=3), ids_for(model, 2, add=50)]
    params = [None, {"seed": 8}, {"temperature": 0, "n": 3}]
    want = []
    for prompt, over in zip(prompts, params):
        kw = dict(temperature=0.8, seed=1, top_logprobs=2, ignore_eos=True)
        kw.update(over or {})
        n = kw.pop("n", 6)
        with session_with(model, prompt) as s:
            want.append(s.sample(n, **kw))
    sessions = [session_with(model, p) for p in prompts]
    got = model.sample_batch(sessions, 6, params, temperature=0.8, seed=1, top_logprobs=2, ignore_eos=True)
    for a, b in zip(got, want):
        assert_same(a, b)
    assert [len(r.tokens) for r in got] == [6, 6, 3]
    # no params at all: the common keywords for all; a tuple of sessions
    again = [session_with(model, p) for p in prompts]
    got = model.sample_batch(tuple(again), 4, seed=5)
    for s, p, r in zip(again, prompts, got):
        with session_with(model, p) as t:
            assert_same(r, t.sample(4, seed=5))
    for s in sessions + again:
        s.close()


def test_batch_of_one_and_of_forks(model):
    prompt = ids_for(model, 10)
    with session_with(model, prompt) as base:
        # temporaries: the list is all that keeps the forks alive during the call
        results = model.sample_batch([base.fork() for _ in range(4)], 8, params=[{"seed": i} for i in range(4)])
        for i, r in enumerate(results):
            with base.fork() as f:
                assert_same(r, f.sample(8, seed=i))
        (one,) = model.sample_batch([base], 5, seed=3, top_logprobs=1)
    with session_with(model, prompt) as s:
        assert_same(one, s.sample(5, seed=3, top_logprobs=1))


def test_append_batch_equals_append_alone(model):
    prefixes = [ids_for(model, 2), [], ids_for(model, 7, mul=3)]
    chunks = [ids_for(model, 5, mul=11), ids_for(model, 1, add=20), ids_for(model, 13, mul=17)]
    for mode in ("none", "last", "all"):
        want = []
        for pre, chunk in zip(prefixes, chunks):
            with model.session() as s:
                if pre:
                    s.append(pre, logits="none")
                _, lp = s.append_with_logprobs(chunk, logits=mode)
                want.append((lp, s.logits().copy(), s.tokens.copy()))
        sessions = []
        for pre in prefixes:
            s = model.session()
            if pre:
                s.append(pre, logits="none")
            sessions.append(s)
        lps = model.append_batch(sessions, chunks, logits=mode, logprobs=True)
        assert len(lps) == 3
        for s, lp, (wlp, wlogits, wtokens) in zip(sessions, lps, want):
            assert lp.dtype == np.float32 and np.array_equal(bits(lp), bits(wlp))
            assert np.array_equal(bits(s.logits()), bits(wlogits))
            assert np.array_equal(s.tokens, wtokens)
        # without logprobs: None, same state
        more = [[4], [5, 6], [7, 8, 9]]
        assert model.append_batch(sessions, more) is None
        for s, (_, _, wtokens), extra in zip(sessions, want, more):
            assert np.array_equal(s.tokens, np.concatenate([wtokens, extra]))
            assert s.logits().shape == (0, model.info.vocab_size)
            s.close()


# -- 6. stop ids and end of sequence ---------------------------------------------------------------


def test_stop_token_ends_and_is_kept(model):
    prompt = ids_for(model, 5, mul=29)
    kw = dict(seed=11, temperature=1.2, ignore_eos=True)
    with session_with(model, prompt) as base:
        with base.fork() as f:
            full = f.sample(12, **kw)
        stop = int(full.tokens[6])
        j = int(np.flatnonzero(full.tokens == stop)[0])  # its first occurrence
        absent = next(t for t in range(model.info.vocab_size) if t not in full.tokens)
        with base.fork() as f:
            r = f.sample(12, stop_token_ids=[absent, stop], **kw)
            assert r.finish_reason == "stop" and r.stop_token_id == stop
            assert_prefix(r, full, j + 1)
            assert int(r.tokens[-1]) == stop  # kept
            assert f.n_tokens == len(prompt) + j + 1
            assert np.array_equal(f.tokens, np.concatenate([prompt, full.tokens[: j + 1]]))
            # a later call continues after it, exactly as the uninterrupted run
            rest = f.sample(12 - j - 1, **kw)
            assert np.array_equal(rest.tokens, full.tokens[j + 1 :])
            assert np.array_equal(bits(rest.logprobs), bits(full.logprobs[j + 1 :]))
        with base.fork() as f:  # a stop id never produced changes nothing; numpy ids work too
            assert_same(f.sample(12, stop_token_ids=np.array([absent], dtype=np.int64), **kw), full)
        with base.fork() as f:
            assert_same(f.sample(12, stop_token_ids=[], **kw), full)


def find_seed_drawing(logits, token, pos, temperature, limit=50000):
    d = Distribution(logits, temperature=temperature)
    for seed in range(limit):
        if d.draw(seed, pos) == token:
            return seed
    pytest.fail(f"no seed below {limit} draws token {token}")


def test_eos_stops_unless_ignored(model):
    eos = model.eos_token_ids
    assert eos == (1,)  # tiny-dsa: generation_config.json eos_token_id 1
    prompt = ids_for(model, 4, mul=31)
    t = 4.0
    with model.session() as s:
        logits = s.append(prompt, logits="last")
    seed = find_seed_drawing(logits, eos[0], len(prompt), t)
    with session_with(model, prompt) as s:
        r = s.sample(5, temperature=t, seed=seed)
        assert r.tokens.tolist() == [1] and r.finish_reason == "stop" and r.stop_token_id == 1
        assert s.n_tokens == len(prompt) + 1 and int(s.tokens[-1]) == 1
    with session_with(model, prompt) as s:
        r = s.sample(5, temperature=t, seed=seed, ignore_eos=True)
        assert len(r.tokens) == 5 and int(r.tokens[0]) == 1 and r.finish_reason == "length"
        assert r.stop_token_id is None
    with session_with(model, prompt) as s:  # an explicit stop id still stops with ignore_eos
        r = s.sample(5, temperature=t, seed=seed, ignore_eos=True, stop_token_ids=[1])
        assert r.tokens.tolist() == [1] and r.finish_reason == "stop" and r.stop_token_id == 1


def expected_eos(folder):
    for name in ("generation_config.json", "config.json"):
        path = folder / name
        if path.is_file():
            value = json.loads(path.read_text()).get("eos_token_id")
            if value is not None:
                return tuple(value) if isinstance(value, list) else (value,)
    return ()


def test_eos_token_ids_of_every_fixture(fixture_dir):
    with glm5.Model(fixture_dir) as m:
        ids = m.eos_token_ids
        assert isinstance(ids, tuple) and all(isinstance(i, int) for i in ids)
        assert ids == expected_eos(fixture_dir)
    expect(glm5.InvalidArgumentError, lambda: m.eos_token_ids, needle="closed")


# -- 7. bad input ----------------------------------------------------------------------------------

LIBRARY_RANGE_ERRORS = [
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=math.nan), "temperature"),
    (dict(temperature=math.inf), "temperature"),
    (dict(temperature=10**400), "temperature"),  # a double's overflow: the library sees inf
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=math.nan), "top_p"),
    (dict(top_p=-0.5), "top_p"),
    (dict(top_k=-1), "top_k"),
    (dict(min_p=1.0), "min_p"),
    (dict(min_p=-0.1), "min_p"),
    (dict(min_p=math.nan), "min_p"),
    (dict(top_logprobs=65), "top_logprobs"),
    (dict(top_logprobs=10**6), "top_logprobs"),
    (dict(stop_token_ids=[5, 320]), "stop_token_ids"),
    (dict(stop_token_ids=[-1]), "stop_token_ids"),
    (dict(stop_token_ids=[0] * 4097), "stop_token_ids"),
]


def case_id(case):
    def short(v):
        if isinstance(v, list):
            return f"list{len(v)}" if len(v) > 4 else str(v)
        return str(v) if len(str(v)) <= 12 else "huge"

    return ",".join(f"{k}={short(v)}" for k, v in case[0].items())


@pytest.mark.parametrize("case", LIBRARY_RANGE_ERRORS, ids=case_id)
def test_out_of_range_parameters_are_refused_by_the_library(model, case):
    kw, field = case
    with session_with(model, ids_for(model, 5)) as s, session_with(model, ids_for(model, 3)) as t:
        s.append([9], logits="last")
        before = (s.n_tokens, s.tokens.copy(), s.logits().copy())
        err = expect(glm5.InvalidArgumentError, s.sample, 4, needle=field, **kw)
        assert err.status == glm5.Status.INVALID_ARGUMENT
        assert s.n_tokens == before[0] and np.array_equal(s.tokens, before[1])
        assert np.array_equal(s.logits(), before[2])  # a failed call changes nothing
        # in a batch: the index is named, no session changes
        err = expect(glm5.InvalidArgumentError, model.sample_batch, [t, s], 4, params=[None, kw], needle=field)
        assert "1" in err.message, err.message
        assert s.n_tokens == before[0] and t.n_tokens == 3
        # still usable
        assert len(s.sample(2, seed=1, ignore_eos=True).tokens) == 2


def test_bad_temperature_in_scoring_and_append_scaled(model):
    ids = ids_for(model, 6)
    for t in (-1.0, math.nan, math.inf):
        expect(glm5.InvalidArgumentError, model.score, ids, temperature=t, needle="temperature")
        with session_with(model, ids[:2]) as s:
            expect(glm5.InvalidArgumentError, s.append_scaled, ids[2:], t, needle="temperature")
            assert s.n_tokens == 2
    with pytest.raises(TypeError):
        model.score(ids, temperature="1")
    with session_with(model, ids[:2]) as s:
        with pytest.raises(TypeError):
            s.append_scaled(ids, None)
        expect(glm5.InvalidArgumentError, s.append_scaled, [320], 1.0, needle="index 0")
        assert s.n_tokens == 2


PYTHON_ERRORS = [
    (dict(temperature="1"), TypeError),
    (dict(temperature=None), TypeError),
    (dict(temperature=True), TypeError),
    (dict(temperature=1e-50), glm5.InvalidArgumentError),  # float32 would make it 0: greedy
    (dict(top_k=1.5), TypeError),
    (dict(top_k=True), TypeError),
    (dict(top_k=2**31), glm5.InvalidArgumentError),
    (dict(top_p="0.5"), TypeError),
    (dict(min_p=None), TypeError),
    (dict(seed=-1), glm5.InvalidArgumentError),
    (dict(seed=2**64), glm5.InvalidArgumentError),
    (dict(seed=1.0), TypeError),
    (dict(stop_token_ids="12"), TypeError),
    (dict(stop_token_ids=[1.5]), TypeError),
    (dict(stop_token_ids=5), TypeError),
    (dict(stop_token_ids=[2**31]), glm5.InvalidArgumentError),
    (dict(ignore_eos="yes"), TypeError),
    (dict(ignore_eos=None), TypeError),
    (dict(top_logprobs=-1), glm5.InvalidArgumentError),
    (dict(top_logprobs=2.0), TypeError),
]


@pytest.mark.parametrize("case", PYTHON_ERRORS, ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c[0].items()))
def test_bad_types_are_refused_before_the_call(model, case):
    kw, error = case
    with session_with(model, ids_for(model, 4)) as s:
        with pytest.raises(error):
            s.sample(3, **kw)
        with pytest.raises(error):
            model.sample_batch([s], 3, params=[kw])
        with pytest.raises(error):
            model.sample_batch([s], 3, **kw)
        assert s.n_tokens == 4


def test_bad_counts(model):
    with session_with(model, ids_for(model, 4), max_tokens=8) as s:
        expect(glm5.InvalidArgumentError, s.sample, -1, needle="n")
        with pytest.raises(TypeError):
            s.sample(2.0)
        with pytest.raises(TypeError):
            s.sample(True)
        with pytest.raises(glm5.ContextFullError):
            s.sample(5)  # 4 + 5 > 8: nothing generated
        with pytest.raises(glm5.ContextFullError):
            s.sample(10**15)  # no huge allocation
        assert s.n_tokens == 4
        with pytest.raises(glm5.ContextFullError):
            model.sample_batch([s], 5)
        assert len(s.sample(4, ignore_eos=True).tokens) == 4 and s.n_tokens == 8
    with model.session() as empty:
        expect(glm5.InvalidArgumentError, empty.sample, 1)
        assert empty.n_tokens == 0


def test_bad_batches(model, model_1_thread):
    a, b = session_with(model, [1, 2]), session_with(model, [3, 4, 5])
    other = session_with(model_1_thread, [6])
    try:
        expect(glm5.InvalidArgumentError, model.sample_batch, [a, b, a], 3)  # the library: same session twice
        assert a.n_tokens == 2 and b.n_tokens == 3
        expect(glm5.InvalidArgumentError, model.append_batch, [a, a], [[1], [2]])
        assert a.n_tokens == 2
        expect(glm5.InvalidArgumentError, model.sample_batch, [], 3)  # the library: n out of range
        expect(glm5.InvalidArgumentError, model.sample_batch, [a, b], 3, params=[{}], needle="params")
        expect(glm5.InvalidArgumentError, model.sample_batch, [a, b], 3, params=[{}, {}, {}], needle="params")
        expect(glm5.InvalidArgumentError, model.sample_batch, [a, other], 3, needle="1")
        with pytest.raises(TypeError):
            model.sample_batch([a, b], 3, params={"seed": 1})
        with pytest.raises(TypeError):
            model.sample_batch([a, b], 3, params=[{}, 5])
        with pytest.raises(TypeError, match="tempreature"):
            model.sample_batch([a, b], 3, params=[{}, {"tempreature": 1.0}])
        with pytest.raises(TypeError, match="tempreature"):
            model.sample_batch([a, b], 3, tempreature=1.0)
        with pytest.raises(TypeError):
            model.sample_batch([a, "b"], 3)
        with pytest.raises(TypeError):
            model.sample_batch(a, 3)
        with pytest.raises(TypeError):
            model.sample_batch([a, b], "3")
        # append_batch
        expect(glm5.InvalidArgumentError, model.append_batch, [a, b], [[1]], needle="chunks")
        err = expect(glm5.InvalidArgumentError, model.append_batch, [a, b], [[1], []])  # the library
        assert "1" in err.message
        err = expect(glm5.InvalidArgumentError, model.append_batch, [a, b], [[1], [2, 320]])
        assert "1" in err.message
        with pytest.raises(TypeError):
            model.append_batch([a, b], [[1], [2.0]])
        with pytest.raises(TypeError):
            model.append_batch([a, b], [[1], [2]], logprobs="yes")
        expect(glm5.InvalidArgumentError, model.append_batch, [a, b], [[1], [2]], logits="first")
        assert a.n_tokens == 2 and b.n_tokens == 3
        # a closed session, named by index
        b.close()
        expect(glm5.InvalidArgumentError, model.sample_batch, [a, b], 3, needle="session 1 is closed")
        expect(glm5.InvalidArgumentError, model.append_batch, [a, b], [[1], [2]], needle="closed")
        assert a.n_tokens == 2
        # a closed model
        with glm5.Model(api_fixture()) as m2:
            c = session_with(m2, [1])
        expect(glm5.InvalidArgumentError, m2.sample_batch, [c], 1, needle="closed")
        assert len(c.sample(1).tokens) == 1  # the session itself works on
        c.close()
    finally:
        for s in (a, b, other):
            s.close()


# -- 8. cancel -------------------------------------------------------------------------------------


def test_cancel_before_the_call_stops_the_next_one(model):
    prompt = ids_for(model, 3)
    with session_with(model, prompt) as s, session_with(model, prompt) as ref:
        want = ref.sample(5, seed=4, ignore_eos=True)
        s.cancel()
        r = s.sample(5, seed=4, ignore_eos=True)
        assert r.finish_reason == "cancelled" and len(r.tokens) == 0 and r.stop_token_id is None
        assert s.n_tokens == len(prompt)
        assert_same(s.sample(5, seed=4, ignore_eos=True), want)  # consumed
        # in a batch: only the cancelled session stops
        t = session_with(model, prompt)
        u = session_with(model, prompt)
        t.cancel()
        rt, ru = model.sample_batch([t, u], 5, seed=4, ignore_eos=True)
        assert rt.finish_reason == "cancelled" and len(rt.tokens) == 0 and t.n_tokens == len(prompt)
        assert_same(ru, want)
        t.close()
        u.close()


def run_in_thread(fn):
    box = {}
    started = threading.Event()

    def work():
        started.set()
        try:
            box["result"] = fn()
        except BaseException as e:  # reported by the caller
            box["error"] = e

    th = threading.Thread(target=work)
    th.start()
    started.wait()
    return th, box


def test_cancel_from_another_thread(model_1_thread):
    m = model_1_thread
    prompt = ids_for(m, 4)
    n = m.info.max_position_embeddings - len(prompt)
    kw = dict(seed=21, ignore_eos=True, top_logprobs=16)
    with session_with(m, prompt) as ref:
        t0 = time.perf_counter()
        alone = ref.sample(n, **kw)
        elapsed = time.perf_counter() - t0
    assert len(alone.tokens) == n
    landed = []
    for attempt in range(5):
        with session_with(m, prompt) as s:
            th, box = run_in_thread(lambda: s.sample(n, **kw))
            time.sleep(elapsed / 4)
            s.cancel()
            th.join(120)
            assert not th.is_alive() and "error" not in box, box.get("error")
            r = box["result"]
            k = len(r.tokens)
            assert s.n_tokens == len(prompt) + k
            assert np.array_equal(s.tokens, np.concatenate([prompt, alone.tokens[:k]]))
            assert_prefix(r, alone, k)
            assert r.stop_token_id is None
            if r.finish_reason == "cancelled":
                landed.append(k)
                # the cancel was consumed: the next call runs, and continues the trajectory
                more = s.sample(min(3, n - k), **kw)
                assert more.finish_reason == "length"
                assert np.array_equal(more.tokens, alone.tokens[k : k + len(more.tokens)])
                break
            # The run ended before the cancel landed: the cancel is kept for the next call
            # (or, if it came at the very end, consumed by this one).
            assert r.finish_reason == "length" and k == n
            s.truncate(len(prompt))
            nxt = s.sample(1, **kw)
            assert (nxt.finish_reason, len(nxt.tokens)) in (("cancelled", 0), ("length", 1))
    assert landed, f"no cancel landed within a sample of {elapsed:.3f} s in 5 attempts"


def test_cancel_one_session_of_a_running_batch(model_1_thread):
    m = model_1_thread
    prompt_a, prompt_b = ids_for(m, 4), ids_for(m, 6, mul=5)
    n = m.info.max_position_embeddings - len(prompt_b)
    kw = dict(seed=2, ignore_eos=True)
    with session_with(m, prompt_a) as ra, session_with(m, prompt_b) as rb:
        t0 = time.perf_counter()
        want_a, want_b = ra.sample(n, **kw), rb.sample(n, **kw)
        elapsed = time.perf_counter() - t0
    a, b = session_with(m, prompt_a), session_with(m, prompt_b)
    th, box = run_in_thread(lambda: m.sample_batch([a, b], n, **kw))
    time.sleep(elapsed / 8)
    a.cancel()
    th.join(120)
    assert "error" not in box, box.get("error")
    got_a, got_b = box["result"]
    assert got_a.finish_reason in ("cancelled", "length")
    assert_prefix(got_a, want_a, len(got_a.tokens))
    assert_same(got_b, want_b)  # the other session runs to its end
    assert a.n_tokens == len(prompt_a) + len(got_a.tokens)
    a.close()
    b.close()


def test_close_waits_for_a_running_sample(model_1_thread):
    m = model_1_thread
    prompt = ids_for(m, 4)
    s = session_with(m, prompt)
    th, box = run_in_thread(lambda: s.sample(200, seed=1, ignore_eos=True))
    time.sleep(0.001)
    s.cancel()
    s.close()  # waits for the call, then frees
    th.join(120)
    assert "error" not in box or isinstance(box["error"], glm5.InvalidArgumentError)
    assert s.closed


# -- 9. threads ------------------------------------------------------------------------------------


def test_two_sessions_sampled_from_two_threads(model):
    prompts = [ids_for(model, 5), ids_for(model, 12, mul=3)]
    kws = [dict(seed=1, top_k=40, ignore_eos=True), dict(seed=2, temperature=0.7, top_logprobs=3, ignore_eos=True)]
    want = []
    for p, kw in zip(prompts, kws):
        with session_with(model, p) as s:
            want.append(s.sample(60, **kw))
    for _ in range(3):
        sessions = [session_with(model, p) for p in prompts]
        barrier = threading.Barrier(2)
        results = [None, None]

        def work(i):
            barrier.wait()
            results[i] = sessions[i].sample(60, **kws[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r, w in zip(results, want):
            assert_same(r, w)
        for s in sessions:
            s.close()


def test_one_session_sampled_from_two_threads_is_busy_or_sequential(model):
    prompt = ids_for(model, 5)
    kw = dict(seed=3, ignore_eos=True)
    n = 40
    with session_with(model, prompt) as ref:
        first, second = ref.sample(n, **kw), ref.sample(n, **kw)
    for _ in range(3):
        with session_with(model, prompt) as s:
            barrier = threading.Barrier(2)
            outcomes = []

            def work():
                barrier.wait()
                try:
                    outcomes.append(s.sample(n, **kw))
                except glm5.BusyError as e:
                    outcomes.append(e)

            threads = [threading.Thread(target=work) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done = [o for o in outcomes if isinstance(o, glm5.SampleResult)]
            assert len(outcomes) == 2 and len(done) >= 1
            # whichever ran first continued from the prompt, a second one after it
            assert s.n_tokens == len(prompt) + n * len(done)
            ran = sorted(done, key=lambda r: not np.array_equal(r.tokens, first.tokens))
            assert_same(ran[0], first)
            if len(done) == 2:
                assert_same(ran[1], second)


def test_batch_while_a_session_is_busy(model):
    """A batch that includes a session another thread is sampling on: BusyError naming it, and
    nothing claimed stays claimed; or, if the batch got there first, the other call is busy."""
    prompt = ids_for(model, 5)
    for _ in range(3):
        with session_with(model, prompt) as s, session_with(model, prompt) as t:
            th, box = run_in_thread(lambda: s.sample(150, seed=1, ignore_eos=True))
            try:
                outcome = model.sample_batch([t, s], 2, seed=1)
            except glm5.BusyError as e:
                outcome = e
                assert "session 1" in e.message
                assert t.n_tokens == len(prompt)
            th.join(120)
            if isinstance(outcome, glm5.BusyError):
                assert "error" not in box and len(box["result"].tokens) == 150
                assert len(t.sample(1).tokens) == 1  # t was released
            else:
                assert len(outcome) == 2 and t.n_tokens == len(prompt) + len(outcome[0].tokens)
                assert "result" in box or isinstance(box["error"], glm5.BusyError)
