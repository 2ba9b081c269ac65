"""glm5 serve: prefix reuse (cached_tokens, LRU eviction within --cache-budget, /flush_cache),
weight-version pins, dsa_topk and input_top_logprobs, each checked against the library bit for bit.

Uses test_server.py's harness (a `glm5 serve` on a free loopback port; skipped without the binary).
"""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest

import glm5
from test_server import (BINARY, DELTA, TINY, TINY_V2, Server, check_equal, f32, lib_kwargs, library,
                         run_concurrently, wait_queued)

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is missing: run `make build` first")

LONG = [11, 42, 7, 199, 3, 88, 120, 5, 61, 17, 230, 9]


@pytest.fixture(scope="module")
def model():
    return glm5.Model(TINY)


@pytest.fixture
def fresh():
    s = Server()
    yield s
    assert s.stop() == 0


def sp(seed, n=8, **kw):
    return dict(temperature=0.9, top_p=0.95, max_new_tokens=n, sampling_seed=seed, ignore_eos=True, **kw)


def cached(out):
    return out["meta_info"]["cached_tokens"]


def test_grpo_group_reuses_the_prompt(fresh, model):
    """A GRPO group (one prompt, 8 seeds) sent at once: the first member prefills the prompt, the
    others fork it; a second group finds it kept. Every answer equals the library's."""
    bodies = [{"input_ids": LONG, "sampling_params": sp(seed), "return_logprob": True} for seed in range(8)]
    assert fresh.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
    threads, results = run_concurrently(fresh, bodies)
    wait_queued(fresh, 8)
    assert fresh.request("POST", "/continue_generation", {})[0] == 200
    for t in threads:
        t.join(timeout=60)
    # At least one token is prefilled (SGLang's rule), and logprob_start_len -1 reports the last.
    assert sorted(cached(r) for r in results) == [0] + [len(LONG) - 1] * 7
    for body, got in zip(bodies, results):
        check_equal(got, library(model, LONG, 8, **lib_kwargs(body["sampling_params"])), LONG)
        ref = model.score(LONG, temperature=0.9)
        assert f32(got["meta_info"]["input_token_logprobs"]).tobytes() == ref[-1:].tobytes()
    # The same group again, one at a time: every member finds the prompt kept.
    for seed in range(8, 16):
        got = fresh.generate({"input_ids": LONG, "sampling_params": sp(seed), "return_logprob": True})
        assert cached(got) == len(LONG) - 1
        check_equal(got, library(model, LONG, 8, **lib_kwargs(sp(seed))), LONG)
    status, si = fresh.json("GET", "/server_info")
    assert si["cached_sessions"] >= 1 and 0 < si["cached_bytes"] <= si["cache_budget"]


def test_multi_turn_extension(fresh, model):
    """Turn 2 sends turn 1's prompt and answer plus new tokens: only the new ones are prefilled,
    and the answer, its input logprobs and output logprobs equal the library's on the whole."""
    first = fresh.generate({"input_ids": LONG, "sampling_params": sp(1, n=6), "return_logprob": True})
    history = LONG + first["output_ids"]
    turn2 = history + [300, 301, 302]
    start = len(history) - 2
    out = fresh.generate({"input_ids": turn2, "sampling_params": sp(2, n=7), "return_logprob": True,
                          "logprob_start_len": start})
    # Reuse stops where the requested input logprobs start (they come from this request's append).
    assert cached(out) == start
    check_equal(out, library(model, turn2, 7, **lib_kwargs(sp(2, n=7))), turn2)
    ref = model.score(turn2, temperature=0.9)
    assert f32(out["meta_info"]["input_token_logprobs"]).tobytes() == ref[start:].tobytes()
    # Without input logprobs asked, everything computed is reused.
    turn3 = turn2 + out["output_ids"] + [7, 8]
    out3 = fresh.generate({"input_ids": turn3, "sampling_params": sp(3, n=5), "return_logprob": True})
    assert cached(out3) == len(turn2) + len(out["output_ids"])
    check_equal(out3, library(model, turn3, 5, **lib_kwargs(sp(3, n=5))), turn3)
    # A branch: a prompt sharing only part of a kept session is served from its prefix.
    branch = LONG[:7] + [1, 2, 3]
    out4 = fresh.generate({"input_ids": branch, "sampling_params": sp(4, n=4), "return_logprob": True})
    assert cached(out4) == 7
    check_equal(out4, library(model, branch, 4, **lib_kwargs(sp(4, n=4))), branch)


def test_fork_of_a_running_request(model):
    """A request admitted while another with the same prompt decodes forks the running session
    (truncated to the prompt). With --cache-budget 0 nothing is kept, so only the running session
    can have served it; pausing in place makes the order certain: the second request is admitted
    (before the next step) while the first runs."""
    s = Server("--cache-budget", "0")
    try:
        long_sp = sp(1, n=200)
        threads, first = run_concurrently(s, [{"input_ids": LONG, "sampling_params": long_sp, "return_logprob": True}])
        deadline = time.time() + 20
        while s.json("GET", "/server_info")[1]["num_running_reqs"] != 1:
            assert time.time() < deadline, "the long request did not start running"
            time.sleep(0.001)
        assert s.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
        more, second = run_concurrently(s, [{"input_ids": LONG, "sampling_params": sp(2, n=5), "return_logprob": True}])
        wait_queued(s, 1)
        assert s.request("POST", "/continue_generation", {})[0] == 200
        for t in threads + more:
            t.join(timeout=60)
        assert cached(first[0]) == 0 and cached(second[0]) == len(LONG) - 1
        check_equal(second[0], library(model, LONG, 5, **lib_kwargs(sp(2, n=5))), LONG)
        check_equal(first[0], library(model, LONG, 200, **lib_kwargs(long_sp)), LONG)
        assert s.json("GET", "/server_info")[1]["cached_sessions"] == 0
    finally:
        assert s.stop() == 0


def test_no_reuse_across_a_weight_update():
    """A weight update applied while generation is paused in place, with a request decoding:
    that request's caches (partly from the old weights) serve no later request, and the kept
    sessions are dropped; what follows equals the library on the new weights."""
    v2 = glm5.Model(TINY_V2)
    s = Server()
    try:
        s.generate({"input_ids": LONG, "sampling_params": sp(0, n=3)})  # kept: LONG on the old weights
        threads, first = run_concurrently(s, [{"input_ids": LONG, "sampling_params": sp(1, n=150)}])
        deadline = time.time() + 20
        while s.json("GET", "/server_info")[1]["num_running_reqs"] != 1:
            assert time.time() < deadline, "the long request did not start running"
            time.sleep(0.001)
        assert s.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
        status, r = s.json("POST", "/update_weights_from_disk", {"model_path": str(DELTA), "load_format": "delta"})
        assert status == 200 and r["success"], r
        assert s.json("GET", "/server_info")[1]["cached_sessions"] == 0
        more, second = run_concurrently(s, [{"input_ids": LONG, "sampling_params": sp(2, n=5), "return_logprob": True}])
        wait_queued(s, 1)
        assert s.request("POST", "/continue_generation", {})[0] == 200
        for t in threads + more:
            t.join(timeout=60)
        assert cached(second[0]) == 0
        check_equal(second[0], library(v2, LONG, 5, **lib_kwargs(sp(2, n=5))), LONG)
        third = s.generate({"input_ids": LONG, "sampling_params": sp(3, n=5), "return_logprob": True})
        assert cached(third) == len(LONG) - 1  # from the second request's session, not the first's
        check_equal(third, library(v2, LONG, 5, **lib_kwargs(sp(3, n=5))), LONG)
        # Kept: the second and third requests' sessions; not the first's (begun on the old weights).
        assert s.json("GET", "/server_info")[1]["cached_sessions"] == 2
    finally:
        assert s.stop() == 0


def test_budget_evicts_least_recently_used(model):
    """A budget that holds one session: a second prompt evicts the first (cached_tokens 0 when it
    comes back); /flush_cache empties the cache."""
    probe = Server()
    try:
        probe.generate({"input_ids": LONG, "sampling_params": sp(0, n=4)})
        one = probe.json("GET", "/server_info")[1]["cached_bytes"]
    finally:
        assert probe.stop() == 0
    assert one > 0
    s = Server("--cache-budget", str(one + one // 2))
    other = [200 + i for i in range(len(LONG))]
    try:
        a = lambda seed: s.generate({"input_ids": LONG, "sampling_params": sp(seed, n=4), "return_logprob": True})
        assert cached(a(0)) == 0
        assert cached(a(1)) == len(LONG) - 1
        s.generate({"input_ids": other, "sampling_params": sp(2, n=4)})  # evicts LONG's session
        assert s.json("GET", "/server_info")[1]["cached_sessions"] == 1
        got = a(3)
        assert cached(got) == 0
        check_equal(got, library(model, LONG, 4, **lib_kwargs(sp(3, n=4))), LONG)
        assert cached(a(4)) == len(LONG) - 1
        from glm5.client import Client
        Client(s.url).flush_cache()
        assert s.json("GET", "/server_info")[1]["cached_sessions"] == 0
        got = a(5)
        assert cached(got) == 0
        check_equal(got, library(model, LONG, 4, **lib_kwargs(sp(5, n=4))), LONG)
    finally:
        assert s.stop() == 0
    # --cache-budget 0: nothing is kept.
    s = Server("--cache-budget", "0")
    try:
        for seed in range(2):
            assert cached(s.generate({"input_ids": LONG, "sampling_params": sp(seed, n=2)})) == 0
    finally:
        assert s.stop() == 0


def test_weight_version_pin():
    """weight_version {exact_version} / {min_required_version} not satisfied by the live version:
    400 naming weight_version (so that a client such as slime's exact-version hook can retry)."""
    s = Server()
    try:
        body = {"input_ids": LONG, "sampling_params": sp(0, n=2)}
        assert s.json("POST", "/generate", dict(body, weight_version={"exact_version": "default"}))[0] == 200
        status, err = s.json("POST", "/generate", dict(body, weight_version={"exact_version": "1"}))
        assert status == 400 and err["error"]["param"] == "weight_version" and "default" in err["error"]["message"]
        status, err = s.json("POST", "/generate", dict(body, weight_version={"min_required_version": 1}))
        assert status == 400 and err["error"]["param"] == "weight_version"
        status, err = s.json("POST", "/generate", dict(body, weight_version={"exact_version": [1]}))
        assert status == 400 and "exact_version" in err["error"]["message"]
        status, r = s.json("POST", "/update_weights_from_disk", {"model_path": str(DELTA), "load_format": "delta"})
        assert status == 200 and r["success"], r
        for pin, want in [({"exact_version": "1"}, 200), ({"exact_version": 1}, 200), ({"exact_version": "default"}, 400),
                          ({"min_required_version": 1}, 200), ({"min_required_version": "0"}, 200),
                          ({"min_required_version": 2}, 400)]:
            status, out = s.json("POST", "/generate", dict(body, weight_version=pin))
            assert status == want, (pin, out)
            if want == 200:
                assert out["meta_info"]["weight_version"] == "1"
        assert s.request("GET", "/health")[0] == 200
    finally:
        assert s.stop() == 0


def test_dsa_topk_and_routed_experts_with_reuse(fresh, model):
    """dsa_topk equals the library's recorded selections, also when the prefix came from an
    earlier request (its record is forked with its caches)."""
    info = model.info
    for seed in range(2):
        out = fresh.generate({"input_ids": LONG, "sampling_params": sp(seed, n=5),
                              "return_dsa_topk": True, "return_routed_experts": True})
        assert cached(out) == (0 if seed == 0 else len(LONG) - 1)
        n = len(LONG) + len(out["output_ids"]) - 1
        got = np.frombuffer(base64.b64decode(out["meta_info"]["dsa_topk"]), dtype="<i4").reshape(n, info.n_layers, info.index_topk)
        s = model.session(record=True)
        s.append(LONG + out["output_ids"])
        assert (got == s.recorded_topk()[:n]).all()
        assert (got[0, :, 1:] == -1).all() and (got[0, :, 0] == 0).all()  # position 0 reads one key
        re = np.frombuffer(base64.b64decode(out["meta_info"]["routed_experts"]), dtype="<i4").reshape(n, info.n_layers, info.n_experts_per_tok)
        ids, _ = s.recorded_routes()
        moe = list(range(info.n_layers - info.n_moe_layers, info.n_layers))
        assert (re[:, moe, :] == np.asarray(ids)[:n]).all()
    # SGLang's name for the same request.
    out = fresh.generate({"input_ids": LONG, "sampling_params": sp(5, n=2), "return_indexer_topk": True})
    assert "dsa_topk" in out["meta_info"]
    assert "dsa_topk" not in fresh.generate({"input_ids": LONG, "sampling_params": sp(5, n=2)})["meta_info"]


@pytest.mark.parametrize("temperature", [0.7, 0.0])
def test_input_top_logprobs(fresh, model, temperature):
    """input_top_logprobs of the positions a greedy or sampled generation produced equal the
    library's output_top_logprobs there (the same logits rows, the same scaling)."""
    # 100 positions: more than one chunk of kept logits (the server keeps 64 rows at a time).
    gen = library(model, LONG, 100, temperature=temperature, seed=3, ignore_eos=True, top_logprobs=4)
    full = LONG + [int(t) for t in gen.tokens]
    for rep in range(2):  # the second time the prefix is kept: reuse stops before logprob_start_len
        out = fresh.generate({"input_ids": full, "sampling_params": {"temperature": temperature, "max_new_tokens": 1},
                              "return_logprob": True, "logprob_start_len": len(LONG), "top_logprobs_num": 4})
        meta = out["meta_info"]
        top = meta["input_top_logprobs"]
        assert len(top) == len(gen.tokens) and all(len(t) == 4 for t in top)
        assert np.array([[x[1] for x in t] for t in top]).tolist() == np.asarray(gen.top_ids).tolist()
        assert np.array([[x[0] for x in t] for t in top], dtype=np.float32).tobytes() == np.asarray(gen.top_logprobs, dtype=np.float32).tobytes()
        assert cached(out) == (0 if rep == 0 else len(LONG) - 1)
        ref = model.score(full, temperature=temperature)
        assert f32(meta["input_token_logprobs"]).tobytes() == ref[len(LONG):].tobytes()
        assert len(meta["output_top_logprobs"]) == 1
    # From position 0: null there, as SGLang.
    out = fresh.generate({"input_ids": LONG, "sampling_params": {"max_new_tokens": 1}, "return_logprob": True,
                          "logprob_start_len": 0, "top_logprobs_num": 2})
    top = out["meta_info"]["input_top_logprobs"]
    assert len(top) == len(LONG) and top[0] is None and all(len(t) == 2 for t in top[1:])
    # Not asked (no top_logprobs_num): absent.
    out = fresh.generate({"input_ids": LONG, "sampling_params": {"max_new_tokens": 1}, "return_logprob": True})
    assert "input_top_logprobs" not in out["meta_info"]
