"""Sessions and scoring: against the goldens, splits, truncation, bad inputs, lifetime, threads."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import glm5
from conftest import FIXTURES_DIR, fixture_dirs, golden_sequences, read_golden


def api_fixture():
    """tiny-dsa (sparse attention with a short index_topk) for the API tests, else the first."""
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


def state(s):
    """Everything observable about a session: its tokens and its kept logits."""
    return s.n_tokens, s.tokens.copy(), s.logits().copy()


def assert_state(s, before):
    n, toks, logits = state(s)
    assert n == before[0]
    assert np.array_equal(toks, before[1])
    assert logits.shape == before[2].shape
    assert np.array_equal(logits, before[2])


def expect(status, fn, *args, needle=None, **kwargs):
    with pytest.raises(glm5.Glm5Error) as e:
        fn(*args, **kwargs)
    assert e.value.status == status, e.value
    if needle is not None:
        assert needle in e.value.message, e.value.message
    return e.value


# -- against the goldens --------------------------------------------------------------------------


def test_score_matches_golden(golden_dir):
    g = read_golden(golden_dir)
    with glm5.Model(golden_dir) as m:
        for tokens, _, logprobs in golden_sequences(g):
            lp = m.score(tokens)
            assert lp.dtype == np.float32 and lp.shape == (len(tokens),)
            assert np.isnan(lp[0]) and np.isnan(logprobs[0])
            assert np.max(np.abs(lp[1:] - logprobs[1:])) <= 1e-4
            assert not np.isnan(lp[1:]).any()
            # the same from a list of ints
            assert np.array_equal(m.score(tokens.tolist()), lp, equal_nan=True)


def test_append_matches_golden(golden_dir):
    g = read_golden(golden_dir)
    with glm5.Model(golden_dir) as m:
        vocab = m.info.vocab_size
        for tokens, logits, _ in golden_sequences(g):
            s = m.session()
            out = s.append(tokens, logits="all")
            assert out.dtype == np.float32 and out.shape == (len(tokens), vocab)
            assert np.max(np.abs(out - logits)) <= 5e-4
            assert np.array_equal(s.logits(), out)
            # "last" is the last row of "all", bit for bit; "none" returns None
            t = m.session()
            last = t.append(tokens, logits="last")
            assert last.shape == (vocab,) and np.array_equal(last, out[-1])
            assert m.session().append(tokens, logits="none") is None
            # logprobs of an append are the score, bit for bit
            u = m.session()
            none, lp = u.append_with_logprobs(tokens)
            assert none is None
            assert np.array_equal(lp, m.score(tokens), equal_nan=True)
            for sess in (s, t, u):
                sess.close()


@pytest.mark.parametrize("split", [[1], [2, 3], [5, 1, 7], [4]])
def test_chunked_appends_equal_one_append(golden_dir, split):
    g = read_golden(golden_dir)
    with glm5.Model(golden_dir) as m:
        for tokens, _, _ in golden_sequences(g):
            with m.session() as one:
                logits1, lp1 = one.append_with_logprobs(tokens, logits="all")
            with m.session() as s:
                parts_logits, parts_lp, at, k = [], [], 0, 0
                while at < len(tokens):
                    n = split[k % len(split)]
                    k += 1
                    chunk = tokens[at : at + n]
                    logits, lp = s.append_with_logprobs(chunk, logits="all")
                    parts_logits.append(logits)
                    parts_lp.append(lp)
                    at += len(chunk)
                assert np.array_equal(np.concatenate(parts_logits), logits1)
                assert np.array_equal(np.concatenate(parts_lp), lp1, equal_nan=True)
                assert np.array_equal(s.tokens, tokens)


def test_generate_matches_golden(golden_dir):
    g = read_golden(golden_dir)
    prompt, want, want_lp = g["greedy.prompt"], g["greedy.tokens"], g["greedy.logprobs"]
    with glm5.Model(golden_dir) as m, m.session() as s:
        assert s.append(prompt, logits="none") is None
        ids, lp = s.generate(len(want))
        assert ids.dtype == np.int32 and lp.dtype == np.float32
        assert ids.shape == lp.shape == (len(want),)
        assert np.array_equal(ids, want)
        assert np.max(np.abs(lp - want_lp)) <= 1e-4
        assert s.n_tokens == len(prompt) + len(want)
        assert np.array_equal(s.tokens, np.concatenate([prompt, want]))
        # the generated logprobs are what scoring the whole sequence says, bit for bit
        assert np.array_equal(m.score(s.tokens)[len(prompt) :], lp)
        # one at a time is the same as all at once
        s.truncate(len(prompt))
        for i in range(len(want)):
            one, one_lp = s.generate(1)
            assert one[0] == want[i] and one_lp[0] == lp[i]


def test_truncate_and_reappend(golden_dir):
    g = read_golden(golden_dir)
    with glm5.Model(golden_dir) as m:
        for tokens, _, _ in golden_sequences(g):
            with m.session() as s:
                logits1, lp1 = s.append_with_logprobs(tokens, logits="all")
                for keep in sorted({0, 1, len(tokens) // 3, len(tokens) // 2, len(tokens) - 1}):
                    s.truncate(keep)
                    assert s.n_tokens == keep
                    assert np.array_equal(s.tokens, tokens[:keep])
                    assert s.logits().shape == (0, m.info.vocab_size)  # cleared
                    logits, lp = s.append_with_logprobs(tokens[keep:], logits="all")
                    assert np.array_equal(logits, logits1[keep:])
                    assert np.array_equal(lp, lp1[keep:], equal_nan=True)
                # a divergent tail, truncated away, leaves no trace
                half = len(tokens) // 2
                s.truncate(half)
                s.append([0, 1, 2], logits="none")
                s.truncate(half)
                logits, lp = s.append_with_logprobs(tokens[half:], logits="all")
                assert np.array_equal(logits, logits1[half:])
                assert np.array_equal(lp, lp1[half:], equal_nan=True)


# -- the API on one model -------------------------------------------------------------------------


def test_session_basics(model):
    info = model.info
    with model.session() as s:
        assert isinstance(s, glm5.Session)
        assert s.max_tokens == info.max_position_embeddings
        assert s.vocab_size == info.vocab_size
        assert s.n_tokens == 0
        assert s.tokens.dtype == np.int32 and s.tokens.shape == (0,)
        assert s.logits().shape == (0, info.vocab_size)
        last = s.append([1, 2, 3])  # "last" by default
        assert last.shape == (info.vocab_size,) and last.dtype == np.float32
        assert s.n_tokens == 3 and s.tokens.tolist() == [1, 2, 3]
        assert np.array_equal(s.logits(), last[None, :])
        assert s.append([4], logits=glm5.Logits.ALL).shape == (1, info.vocab_size)
        assert s.append([5], logits="LAST").shape == (info.vocab_size,)
        assert s.append([6], logits=glm5.Logits.NONE) is None
        assert s.logits().shape == (0, info.vocab_size)
        ids, lp = s.generate(0)
        assert ids.shape == lp.shape == (0,)
        assert "6/" in repr(s)
    assert s.closed and "closed" in repr(s)
    assert [int(v) for v in glm5.Logits] == [0, 1, 2]


def test_token_inputs_of_every_integer_kind(model):
    base = ids_for(model, 9)
    want = model.score(base)
    arr = np.array(base)
    inputs = [
        base,
        tuple(base),
        arr.astype(np.int64),
        arr.astype(np.int32),
        arr.astype(np.uint16),
        arr.astype(np.int16),
        arr.astype(">i4"),  # big-endian
        np.repeat(arr, 2)[::2],  # not contiguous
        [np.int64(v) for v in base],
    ]
    if max(base) < 256:
        inputs.append(arr.astype(np.uint8))
    for ids in inputs:
        assert np.array_equal(model.score(ids), want, equal_nan=True), type(ids)
        with model.session() as s:
            _, lp = s.append_with_logprobs(ids)
            assert np.array_equal(lp, want, equal_nan=True)
    # any iterable of ints, a generator included
    assert np.array_equal(model.score(i for i in base), want, equal_nan=True)


@pytest.mark.parametrize(
    "ids, error",
    [
        ([1.0, 2.0], TypeError),
        ([1, 2.5], TypeError),
        ([True, False], TypeError),
        (["1"], TypeError),
        ("123", TypeError),
        (b"\x01", TypeError),
        (5, TypeError),
        (None, TypeError),
        ([[1, 2]], TypeError),
        (np.array([1.0, 2.0]), TypeError),
        (np.array([True]), TypeError),
        (np.array([[1, 2], [3, 4]]), glm5.InvalidArgumentError),
        (np.array(3), glm5.InvalidArgumentError),
        ([2**31], glm5.InvalidArgumentError),
        ([0, -(2**31) - 1], glm5.InvalidArgumentError),
        ([2**70], glm5.InvalidArgumentError),
        (np.array([1, 2**40]), glm5.InvalidArgumentError),
        (np.array([2**63], dtype=np.uint64), glm5.InvalidArgumentError),
    ],
)
def test_bad_token_inputs(model, ids, error):
    with model.session() as s:
        s.append([1, 2], logits="all")
        before = state(s)
        with pytest.raises(error) as e:
            s.append(ids)
        if error is glm5.InvalidArgumentError:
            assert e.value.status == glm5.Status.INVALID_ARGUMENT
            assert isinstance(e.value, ValueError)
        assert_state(s, before)
        with pytest.raises(error):
            s.append_with_logprobs(ids)
        with pytest.raises(error):
            model.score(ids)
        assert_state(s, before)


def test_out_of_vocabulary_ids_leave_the_session_unchanged(model):
    vocab = model.info.vocab_size
    with model.session() as s:
        s.append(ids_for(model, 5), logits="all")
        before = state(s)
        for bad, index, value in [([1, 2, -1], 2, -1), ([1, vocab, 2], 1, vocab), ([-(2**31)], 0, -(2**31))]:
            for call in (
                lambda: s.append(bad),
                lambda: s.append(bad, logits="none"),
                lambda: s.append_with_logprobs(bad, logits="all"),
            ):
                err = expect(glm5.Status.INVALID_ARGUMENT, call, needle=f"index {index}")
                assert str(value) in err.message
                assert isinstance(err, glm5.InvalidArgumentError)
                assert_state(s, before)
            expect(glm5.Status.INVALID_ARGUMENT, model.score, bad, needle=f"index {index}")
        # and still usable: the caches are intact
        nxt = ids_for(model, 1, add=11)
        _, lp = s.append_with_logprobs(nxt)
        assert lp[0] == model.score(np.concatenate([before[1], nxt]))[-1]


def test_empty_ids_are_invalid(model):
    with model.session() as s:
        s.append([3])
        before = state(s)
        expect(glm5.Status.INVALID_ARGUMENT, s.append, [], needle="n_tokens")
        expect(glm5.Status.INVALID_ARGUMENT, s.append, np.array([], dtype=np.int32))
        expect(glm5.Status.INVALID_ARGUMENT, s.append_with_logprobs, [])
        assert_state(s, before)
    expect(glm5.Status.INVALID_ARGUMENT, model.score, [])


def test_bad_logits_argument(model):
    with model.session() as s:
        expect(glm5.Status.INVALID_ARGUMENT, s.append, [1], logits="first", needle="logits")
        with pytest.raises(ValueError):
            s.append([1], logits="")
        with pytest.raises(TypeError):
            s.append([1], logits=1)
        with pytest.raises(TypeError):
            s.append([1], logits=None)
        assert s.n_tokens == 0


def test_context_full(model):
    ids = ids_for(model, 9)
    with model.session(max_tokens=6) as s:
        assert s.max_tokens == 6
        s.append(ids[:4], logits="last")
        before = state(s)
        expect(glm5.Status.CONTEXT_FULL, s.append, ids[4:7], needle="6")
        assert_state(s, before)
        with pytest.raises(glm5.ContextFullError):
            s.generate(3)
        assert_state(s, before)  # checked before anything was generated
        with pytest.raises(glm5.ContextFullError):
            s.generate(10**15)  # no huge allocation either
        assert_state(s, before)
        # still usable, up to exactly 6
        out, lp = s.generate(1)
        _, lp2 = s.append_with_logprobs(ids[5:6])
        assert s.n_tokens == 6
        whole = model.score(s.tokens)
        assert lp[0] == whole[4] and lp2[0] == whole[5]
        expect(glm5.Status.CONTEXT_FULL, s.append, [1])
        expect(glm5.Status.CONTEXT_FULL, s.generate, 1)
        s.truncate(5)
        s.append([1], logits="none")
    # score: at most max_position_embeddings tokens
    p = model.info.max_position_embeddings
    long = ids_for(model, p + 1)
    expect(glm5.Status.CONTEXT_FULL, model.score, long)
    assert model.score(long[:p]).shape == (p,)


def test_session_max_tokens_argument(model):
    p = model.info.max_position_embeddings
    expect(glm5.Status.INVALID_ARGUMENT, model.session, p + 1, needle="max_tokens")
    expect(glm5.Status.INVALID_ARGUMENT, model.session, max_tokens=-1, needle="max_tokens")
    expect(glm5.Status.INVALID_ARGUMENT, model.session, max_tokens=2**32, needle="max_tokens")
    with pytest.raises(TypeError):
        model.session(max_tokens=True)
    with pytest.raises(TypeError):
        model.session(max_tokens="3")
    with pytest.raises(TypeError):
        model.session(max_tokens=3.0)
    for arg, want in [(None, p), (0, p), (p, p), (1, 1), (np.int64(5), 5)]:
        with model.session(max_tokens=arg) as s:
            assert s.max_tokens == want


def test_generate_arguments(model):
    with model.session() as s:
        expect(glm5.Status.INVALID_ARGUMENT, s.generate, 2, needle="token")  # empty session
        assert s.n_tokens == 0
        s.append([1, 2])
        expect(glm5.Status.INVALID_ARGUMENT, s.generate, -1)
        with pytest.raises(TypeError):
            s.generate(2.0)
        with pytest.raises(TypeError):
            s.generate(True)
        assert s.n_tokens == 2
        ids, lp = s.generate(np.int32(2))
        assert len(ids) == 2 and s.n_tokens == 4
        assert (lp <= 0).all() and ((0 <= ids) & (ids < model.info.vocab_size)).all()
        assert s.logits().shape[0] == 0  # generate clears the kept logits


def test_truncate_arguments(model):
    with model.session() as s:
        s.append(ids_for(model, 4), logits="all")
        before = state(s)
        expect(glm5.Status.INVALID_ARGUMENT, s.truncate, 5, needle="5")
        assert_state(s, before)
        expect(glm5.Status.INVALID_ARGUMENT, s.truncate, -1)
        with pytest.raises(TypeError):
            s.truncate(1.0)
        assert_state(s, before)
        s.truncate(0)
        assert s.n_tokens == 0
        expect(glm5.Status.INVALID_ARGUMENT, s.generate, 1)  # empty again


# -- lifetime -------------------------------------------------------------------------------------


def test_session_outlives_model_close():
    m = glm5.Model(api_fixture())
    ids = ids_for(m, 12)
    want = m.score(ids)
    s = m.session()
    s.append(ids[:4], logits="none")
    m.close()
    expect(glm5.Status.INVALID_ARGUMENT, m.session, needle="closed")
    expect(glm5.Status.INVALID_ARGUMENT, m.score, ids, needle="closed")
    _, lp = s.append_with_logprobs(ids[4:], logits="all")
    assert np.array_equal(lp, want[4:])
    g1 = s.generate(3)
    s.truncate(12)
    assert np.array_equal(s.generate(3)[0], g1[0])
    s.close()


def test_session_outlives_model_garbage_collection():
    m = glm5.Model(api_fixture())
    ids = ids_for(m, 10)
    want = m.score(ids)
    s = m.session()
    del m
    gc.collect()
    _, lp = s.append_with_logprobs(ids)
    assert np.array_equal(lp, want, equal_nan=True)
    del s
    gc.collect()


def test_close_twice_and_use_after_close(model):
    s = model.session()
    s.append([1, 2])
    s.close()
    s.close()
    assert s.closed
    for call in (
        lambda: s.append([1]),
        lambda: s.append_with_logprobs([1]),
        lambda: s.generate(1),
        lambda: s.truncate(0),
        lambda: s.n_tokens,
        lambda: s.tokens,
        lambda: s.logits(),
    ):
        err = expect(glm5.Status.INVALID_ARGUMENT, call, needle="closed")
        assert isinstance(err, glm5.InvalidArgumentError)
    for _ in range(20):
        t = model.session()
        t.append([1])
        del t
    gc.collect()


def test_freed_session_handle_is_refused_by_the_library(model):
    import ctypes

    from glm5 import _lib

    s = model.session()
    handle = s._handle
    s.close()
    n = ctypes.c_size_t(99)
    assert _lib.LIB.glm5_session_n_tokens(handle, ctypes.byref(n)) == glm5.Status.INVALID_ARGUMENT
    assert "session" in glm5.last_error()
    assert n.value == 99


# -- threads --------------------------------------------------------------------------------------


def test_one_session_two_threads_is_busy_not_a_crash(model):
    """Two threads on one session: each call runs or raises BusyError; nothing else happens."""
    s = model.session()
    s.append([1], logits="none")
    results = {5: [0, 0], 7: [0, 0]}  # token -> [ran, busy]
    errors = []

    def work(tok):
        try:
            for _ in range(20000):
                if results[tok][0] >= 8:
                    break
                try:
                    s.append([tok, tok], logits="last")
                    results[tok][0] += 1
                except glm5.BusyError:
                    results[tok][1] += 1
                try:
                    s.n_tokens
                except glm5.BusyError:
                    results[tok][1] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in (5, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[5][0] == results[7][0] == 8
    toks = s.tokens
    assert len(toks) == 1 + 2 * 16
    pairs = toks[1:].reshape(-1, 2)
    assert (pairs[:, 0] == pairs[:, 1]).all()
    assert (pairs[:, 0] == 5).sum() == 8 and (pairs[:, 0] == 7).sum() == 8
    # whatever the interleaving, the caches hold exactly the tokens
    _, lp = s.append_with_logprobs([9])
    assert lp[0] == model.score(np.concatenate([toks, [9]]))[-1]
    s.close()


def test_close_while_another_thread_appends(model):
    s = model.session()
    s.append([1])
    stop = []

    def work():
        while True:
            try:
                s.append([2], logits="none")
                s.truncate(1)
            except glm5.BusyError:
                continue
            except glm5.InvalidArgumentError as e:
                stop.append(e.message)
                return

    t = threading.Thread(target=work)
    t.start()
    threading.Event().wait(0.05)  # let it run a few appends
    s.close()
    t.join(timeout=30)
    assert not t.is_alive()
    assert stop and "closed" in stop[0]


def test_one_model_many_sessions_in_threads(model):
    ids = ids_for(model, 24, mul=11)
    want = model.score(ids)
    errors, done = [], []

    def work():
        try:
            for _ in range(3):
                assert np.array_equal(model.score(ids), want, equal_nan=True)
                with model.session() as s:
                    _, a = s.append_with_logprobs(ids[:10])
                    _, b = s.append_with_logprobs(ids[10:])
                    assert np.array_equal(np.concatenate([a, b]), want, equal_nan=True)
            done.append(1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(done) == 4


def test_thread_count_does_not_change_results():
    with glm5.Model(api_fixture(), threads=1) as m1, glm5.Model(api_fixture(), threads=2) as m2:
        ids = ids_for(m1, 20, mul=13, add=5)
        assert np.array_equal(m1.score(ids), m2.score(ids), equal_nan=True)
        with m1.session() as a, m2.session() as b:
            assert np.array_equal(a.append(ids, logits="all"), b.append(ids, logits="all"))
            ga, gb = a.generate(5), b.generate(5)
            assert np.array_equal(ga[0], gb[0]) and np.array_equal(ga[1], gb[1])
