"""MTP speculative decoding from Python: Model.mtp_draft_logits against the reference tool's MTP
module (Tests/Fixtures/glm5-tiny/golden.safetensors), Session.sample(speculative=k) and
Model.sample_batch(speculative=...) bit for bit equal to plain sampling, ``accepted``, and the
errors."""

from __future__ import annotations

import numpy as np
import pytest

import glm5
from conftest import FIXTURES_DIR, REPO, read_golden

MODEL = REPO / "models" / "glm5-tiny"
GOLDEN = read_golden(FIXTURES_DIR / "glm5-tiny")
PROMPT = GOLDEN["seq0.tokens"][:24]


@pytest.fixture(scope="module")
def model():
    with glm5.Model(MODEL, threads=2) as m:
        yield m


def assert_same(a: glm5.SampleResult, b: glm5.SampleResult) -> None:
    assert np.array_equal(a.tokens, b.tokens)
    for name in ("logprobs", "scaled_logprobs", "processed_logprobs"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert (a.top_ids is None) == (b.top_ids is None)
    if a.top_ids is not None:
        assert np.array_equal(a.top_ids, b.top_ids) and a.top_logprobs.tobytes() == b.top_logprobs.tobytes()
    assert (a.finish_reason, a.stop_token_id) == (b.finish_reason, b.stop_token_id)


def test_draft_logits_match_the_reference(model):
    assert model.info.has_mtp
    d1 = model.mtp_draft_logits(GOLDEN["seq1.tokens"])
    ref1 = GOLDEN["mtp.seq1.logits"]
    assert d1.shape == ref1.shape == (len(GOLDEN["seq1.tokens"]) - 1, model.info.vocab_size)
    tail = GOLDEN["mtp.seq0.logits_tail"]
    d0 = model.mtp_draft_logits(GOLDEN["seq0.tokens"])[-len(tail):]
    err = max(np.abs(d1 - ref1).max(), np.abs(d0 - tail).max())
    assert err <= 2.5e-5, err  # 9.5e-6 reached (Tests/GLM5Tests/MTPTests)
    assert np.array_equal(d1.argmax(1), ref1.argmax(1)) and np.array_equal(d0.argmax(1), tail.argmax(1))


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize(
    "kw",
    [dict(temperature=0, ignore_eos=True), dict(temperature=0.8, top_p=0.95, seed=9, top_logprobs=2)],
    ids=["greedy", "seeded"],
)
def test_speculative_equals_plain(model, k, kw):
    plain = model.session()
    plain.append(PROMPT)
    a = plain.sample(32, **kw)
    spec = model.session()
    spec.append(PROMPT)
    b = spec.sample(32, speculative=k, **kw)
    assert_same(a, b)
    assert a.accepted is None
    assert b.accepted is not None and len(b.accepted) > 0 and b.accepted.dtype == np.int32
    assert 0 <= b.accepted.min() and b.accepted.max() <= k
    assert np.array_equal(plain.tokens, spec.tokens)


def test_batch_mixes_speculation(model):
    sessions = [model.session() for _ in range(3)]
    for i, s in enumerate(sessions):
        s.append(PROMPT[: 8 + 5 * i])
    per = [dict(speculative=3), None, dict(speculative=1, seed=4)]
    got = model.sample_batch(sessions, 20, per, temperature=0.7)
    for i, r in enumerate(got):
        s = model.session()
        s.append(PROMPT[: 8 + 5 * i])
        alone = s.sample(20, temperature=0.7, seed=(per[i] or {}).get("seed", 0))
        assert_same(alone, r)
        assert (r.accepted is not None) == (per[i] is not None)


def test_errors(model):
    s = model.session()
    s.append(PROMPT)
    with pytest.raises(glm5.InvalidArgumentError, match="speculative is 9"):
        s.sample(4, speculative=9)
    off = model.session(mtp=False)
    off.append(PROMPT)
    with pytest.raises(glm5.InvalidArgumentError, match="without the MTP layer"):
        off.sample(4, speculative=2)
    assert len(off.tokens) == len(PROMPT)
    with pytest.raises(glm5.InvalidArgumentError, match="at least 2 tokens"):
        model.mtp_draft_logits([5])
    with pytest.raises(TypeError):
        s.sample(4, speculative="3")
