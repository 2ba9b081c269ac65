"""glm5 serve: SGLang's native HTTP API over the engine, checked against the library bit for bit.

Starts `.build/release/glm5 serve Tests/Fixtures/tiny-dsa` on a free loopback port (skipped when
the binary is missing: `make build` writes it). Only the standard library's urllib, numpy and the
glm5 ctypes package.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import glm5
from conftest import FIXTURES_DIR, REPO

BINARY = REPO / ".build" / "release" / "glm5"
TINY = FIXTURES_DIR / "tiny-dsa"
TINY_V2 = FIXTURES_DIR / "tiny-dsa-v2"
DELTA = FIXTURES_DIR / "deltas" / "tiny-dsa-v2.deltas" / "weight_v000001"
PROMPT = [11, 42, 7, 199, 3]

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is missing: run `make build` first")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", str(TINY), "--port", str(self.port), "--threads", "2", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"glm5 serve exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("glm5 serve did not answer /health within 30 s")
            time.sleep(0.05)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None and "Content-Type" not in (headers or {}):
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method, path, body=None, **kw):
        status, raw = self.request(method, path, body, **kw)
        return status, (json.loads(raw) if raw else None)

    def generate(self, body, **kw):
        status, out = self.json("POST", "/generate", body, **kw)
        assert status == 200, out
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    assert s.stop() == 0, "glm5 serve did not shut down cleanly on SIGTERM"
    log = s.proc.stderr.read()
    assert "request " in log and "tokens in" in log, log


@pytest.fixture(scope="module")
def model():
    return glm5.Model(TINY)


def library(model, prompt, n, **kw):
    s = model.session()
    s.append(prompt)
    return s.sample(n, **kw)


def f32(triples):
    return np.array([t[0] for t in triples], dtype=np.float32)


def check_equal(out, ref, prompt):
    """An HTTP answer equals the library's SampleResult bit for bit."""
    meta = out["meta_info"]
    assert out["output_ids"] == [int(t) for t in ref.tokens]
    assert meta["completion_tokens"] == len(ref.tokens) and meta["prompt_tokens"] == len(prompt)
    for key, want in [("output_token_logprobs", ref.scaled_logprobs), ("output_token_logprobs_raw", ref.logprobs),
                      ("output_token_logprobs_processed", ref.processed_logprobs)]:
        got = f32(meta[key])
        assert got.tobytes() == np.asarray(want, dtype=np.float32).tobytes(), key
        assert [t[1] for t in meta[key]] == out["output_ids"] and all(t[2] is None for t in meta[key])
    fr = meta["finish_reason"]
    if ref.finish_reason == "stop":
        assert fr == {"type": "stop", "matched": ref.stop_token_id}
    else:
        assert fr == {"type": "length", "length": len(ref.tokens)}


CASES = [
    dict(temperature=0, max_new_tokens=12, ignore_eos=True),
    dict(temperature=0.8, top_p=0.95, max_new_tokens=16, sampling_seed=7, ignore_eos=True),
    dict(temperature=1.3, top_k=20, min_p=0.02, max_new_tokens=10, sampling_seed=123456789, ignore_eos=True),
    dict(temperature=1.0, max_new_tokens=40, sampling_seed=3),  # may stop at the eos id
    dict(temperature=0.9, max_new_tokens=20, sampling_seed=5, stop_token_ids=[3, 4, 5, 6, 7, 8, 9], ignore_eos=True),
]


def lib_kwargs(sp):
    kw = dict(temperature=sp.get("temperature", 1.0), top_p=sp.get("top_p", 1.0), top_k=max(0, sp.get("top_k", 0)),
              min_p=sp.get("min_p", 0.0), seed=sp.get("sampling_seed", 0), ignore_eos=sp.get("ignore_eos", False))
    if "stop_token_ids" in sp:
        kw["stop_token_ids"] = sp["stop_token_ids"]
    return kw


@pytest.mark.parametrize("sp", CASES, ids=range(len(CASES)))
def test_generate_equals_library(server, model, sp):
    out = server.generate({"input_ids": PROMPT, "sampling_params": sp, "return_logprob": True, "rid": "r1"})
    ref = library(model, PROMPT, sp["max_new_tokens"], **lib_kwargs(sp))
    check_equal(out, ref, PROMPT)
    meta = out["meta_info"]
    # The module's server keeps PROMPT's session after the first case (prefix reuse): at most
    # the last prompt token is prefilled again.
    assert meta["id"] == "r1" and out["text"] == "" and meta["cached_tokens"] in (0, len(PROMPT) - 1)
    assert meta["weight_version"] == "default" and meta["e2e_latency"] >= 0
    # input_token_logprobs: from logprob_start_len (-1: the last prompt token), scaled like the outputs.
    raw_scaled = model.score(PROMPT, temperature=sp["temperature"])
    assert [t[1] for t in meta["input_token_logprobs"]] == PROMPT[-1:]
    assert f32(meta["input_token_logprobs"]).tobytes() == raw_scaled[-1:].tobytes()
    # The library's teacher-forced scaled logprobs equal output_token_logprobs.
    full = model.score(PROMPT + out["output_ids"], temperature=sp["temperature"])
    assert f32(meta["output_token_logprobs"]).tobytes() == full[len(PROMPT):].tobytes()


def test_input_logprobs_and_top(server, model):
    out = server.generate({"input_ids": PROMPT, "sampling_params": {"temperature": 0.7, "max_new_tokens": 5, "sampling_seed": 1},
                           "return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": 3})
    meta = out["meta_info"]
    lp = meta["input_token_logprobs"]
    assert len(lp) == len(PROMPT) and lp[0][0] is None and [t[1] for t in lp] == PROMPT
    ref = model.score(PROMPT, temperature=0.7)
    assert f32(lp[1:]).tobytes() == ref[1:].tobytes()
    top = meta["output_top_logprobs"]
    assert len(top) == 5 and all(len(t) == 3 for t in top)
    r = library(model, PROMPT, 5, temperature=0.7, seed=1, top_logprobs=3)
    assert np.array([[x[1] for x in t] for t in top]).tolist() == r.top_ids.tolist()
    assert np.array([[x[0] for x in t] for t in top], dtype=np.float32).tobytes() == r.top_logprobs.tobytes()
    # Without return_logprob there are no logprobs.
    out = server.generate({"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 2}})
    assert "output_token_logprobs" not in out["meta_info"]


def test_batch_and_concurrent_equal_alone(server, model):
    prompts = [PROMPT, [5, 6], [100, 101, 102, 103, 104, 105, 106], [9]]
    sps = [dict(temperature=0.8, max_new_tokens=8 + i, sampling_seed=i, ignore_eos=True) for i in range(len(prompts))]
    alone = [server.generate({"input_ids": p, "sampling_params": sp, "return_logprob": True}) for p, sp in zip(prompts, sps)]
    batch = server.generate({"input_ids": prompts, "sampling_params": sps, "return_logprob": True, "rid": [f"b{i}" for i in range(4)]})
    assert isinstance(batch, list) and len(batch) == 4
    for a, b, p, sp in zip(alone, batch, prompts, sps):
        check_equal(b, library(model, p, sp["max_new_tokens"], **lib_kwargs(sp)), p)
        assert a["output_ids"] == b["output_ids"] and a["meta_info"]["output_token_logprobs"] == b["meta_info"]["output_token_logprobs"]
    assert [b["meta_info"]["id"] for b in batch] == ["b0", "b1", "b2", "b3"]

    # 8 concurrent requests with different lengths: each equals the request served alone.
    bodies = [{"input_ids": PROMPT[: 1 + i % 5] + [i], "sampling_params": dict(temperature=1.1, top_p=0.9, max_new_tokens=4 + 3 * i,
               sampling_seed=100 + i, ignore_eos=True), "return_logprob": True} for i in range(8)]
    results = [None] * 8

    def run(i):
        results[i] = server.generate(bodies[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for body, got in zip(bodies, results):
        sp = body["sampling_params"]
        check_equal(got, library(model, body["input_ids"], sp["max_new_tokens"], **lib_kwargs(sp)), body["input_ids"])


def test_stream_adds_up(server):
    body = {"input_ids": PROMPT, "sampling_params": dict(temperature=0.9, max_new_tokens=9, sampling_seed=4, ignore_eos=True),
            "return_logprob": True}
    whole = server.generate(body)
    status, raw = server.request("POST", "/generate", dict(body, stream=True))
    assert status == 200
    events = [line[len("data: "):] for line in raw.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 9
    for i, c in enumerate(chunks):  # cumulative: chunk i holds the first i+1 tokens
        assert c["output_ids"] == whole["output_ids"][: i + 1]
        assert c["meta_info"]["output_token_logprobs"] == whole["meta_info"]["output_token_logprobs"][: i + 1]
    assert chunks[-1]["meta_info"]["finish_reason"] == whole["meta_info"]["finish_reason"]
    assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])


def test_routed_experts(server, model):
    out = server.generate({"input_ids": PROMPT, "sampling_params": {"temperature": 0, "max_new_tokens": 4},
                           "return_routed_experts": True})
    info = model.info
    n = len(PROMPT) + len(out["output_ids"]) - 1
    re = np.frombuffer(base64.b64decode(out["meta_info"]["routed_experts"]), dtype="<i4").reshape(n, info.n_layers, info.n_experts_per_tok)
    s = model.session(record=True)
    s.append(PROMPT + out["output_ids"])
    ids, _ = s.recorded_routes()
    dense = [l for l in range(info.n_layers) if l < info.n_layers - info.n_moe_layers]
    assert (re[:, dense, :] == -1).all()
    moe = [l for l in range(info.n_layers) if l not in dense]
    assert (re[:, moe, :] == np.asarray(ids)[:n]).all()


def test_management(server):
    for path in ["/model_info", "/get_model_info"]:
        status, mi = server.json("GET", path)
        assert status == 200 and mi["is_generation"] is True and mi["model_path"] == str(TINY) and mi["weight_version"]
    for path in ["/server_info", "/get_server_info"]:
        status, si = server.json("GET", path)
        assert status == 200 and (si["tp_size"], si["dp_size"], si["pp_size"]) == (1, 1, 1)
    assert server.json("GET", "/get_weight_version")[1]["weight_version"]
    assert server.request("GET", "/health_generate")[0] == 200
    assert server.request("POST", "/flush_cache")[0] == 200
    assert server.request("POST", "/abort_request", {"rid": "nobody"})[0] == 200
    # Paused, a request waits; continue lets it finish.
    assert server.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
    got = []
    t = threading.Thread(target=lambda: got.append(server.generate({"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 3}})))
    t.start()
    time.sleep(0.3)
    assert not got
    assert server.request("POST", "/continue_generation", {})[0] == 200
    t.join(timeout=30)
    assert got and len(got[0]["output_ids"]) >= 1


def test_abort(server):
    """Requests aborted by rid or with abort_all answer with finish_reason abort; the others run."""
    assert server.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
    bodies = [{"input_ids": PROMPT, "rid": rid, "sampling_params": {"max_new_tokens": 5, "ignore_eos": True}}
              for rid in ["a", "b", "c"]]
    threads, results = run_concurrently(server, bodies)
    wait_queued(server, 3)
    assert server.request("POST", "/abort_request", {"rid": "b"})[0] == 200
    assert server.request("POST", "/continue_generation", {})[0] == 200
    for t in threads:
        t.join(timeout=30)
    assert [r["meta_info"]["finish_reason"]["type"] for r in results] == ["length", "abort", "length"]
    assert results[1]["output_ids"] == [] and results[1]["meta_info"]["finish_reason"]["message"]
    # abort_all, and pause_generation's default mode (abort), end queued requests too.
    for how in ["abort_all", "pause"]:
        assert server.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
        threads, results = run_concurrently(server, bodies[:2])
        wait_queued(server, 2)
        if how == "abort_all":
            assert server.request("POST", "/abort_request", {"abort_all": True})[0] == 200
        else:
            assert server.request("POST", "/pause_generation", {})[0] == 200
        for t in threads:
            t.join(timeout=30)
        assert all(r["meta_info"]["finish_reason"]["type"] == "abort" for r in results), how
        assert server.request("POST", "/continue_generation", {})[0] == 200
    assert server.generate({"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 2}})["output_ids"]


def updated(server, model_ref_path, version, body):
    ref = glm5.Model(model_ref_path)
    sp = dict(temperature=0.8, max_new_tokens=10, sampling_seed=9, ignore_eos=True)
    before = server.generate({"input_ids": PROMPT, "sampling_params": sp, "return_logprob": True})
    status, r = server.json("POST", "/update_weights_from_disk", body)
    assert status == 200 and r["success"] is True, r
    assert server.json("GET", "/get_weight_version")[1]["weight_version"] == version
    after = server.generate({"input_ids": PROMPT, "sampling_params": sp, "return_logprob": True})
    assert after["meta_info"]["weight_version"] == version
    assert after["meta_info"]["output_token_logprobs"] != before["meta_info"]["output_token_logprobs"]
    check_equal(after, library(ref, PROMPT, 10, **lib_kwargs(sp)), PROMPT)


def test_update_weights_folder():
    s = Server()
    try:
        updated(s, TINY_V2, "v2", {"model_path": str(TINY_V2), "weight_version": "v2"})
        status, r = s.json("POST", "/update_weights_from_disk", {"model_path": "/nonexistent", "weight_version": "v3"})
        assert status == 400 and r["success"] is False and r["message"]
        assert s.json("GET", "/get_weight_version")[1]["weight_version"] == "v2"
    finally:
        assert s.stop() == 0


def test_update_weights_delta():
    s = Server()
    try:
        updated(s, TINY_V2, "1", {"model_path": str(DELTA), "load_format": "delta"})
    finally:
        assert s.stop() == 0


BAD = [
    # (description, raw body or json, expected status)
    ("truncated JSON", b'{"input_ids": [1, 2', 400),
    ("empty body", b"", 400),
    ("not an object", b"[1, 2, 3]", 400),
    ("binary garbage", bytes(range(256)) * 4, 400),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, 400),
    ("huge number", b'{"input_ids": [1e999]}', 400),
    ("huge id", {"input_ids": [10 ** 30]}, 400),
    ("id out of range", {"input_ids": [1, 100000]}, 400),
    ("negative id", {"input_ids": [-1]}, 400),
    ("no input_ids", {"sampling_params": {}}, 400),
    ("text", {"text": "hello"}, 400),
    ("input_ids a string", {"input_ids": "1 2 3"}, 400),
    ("empty input_ids", {"input_ids": []}, 400),
    ("float id", {"input_ids": [1.5]}, 400),
    ("temperature a string", {"input_ids": [1], "sampling_params": {"temperature": "hot"}}, 400),
    ("negative temperature", {"input_ids": [1], "sampling_params": {"temperature": -1}}, 400),
    ("max_new_tokens beyond context", {"input_ids": [1], "sampling_params": {"max_new_tokens": 100000}}, 400),
    ("max_new_tokens huge", {"input_ids": [1], "sampling_params": {"max_new_tokens": 1e300}}, 400),
    ("top_p 0", {"input_ids": [1], "sampling_params": {"top_p": 0}}, 400),
    ("top_k 0", {"input_ids": [1], "sampling_params": {"top_k": 0}}, 400),
    ("stop id out of range", {"input_ids": [1], "sampling_params": {"stop_token_ids": [99999]}}, 400),
    ("sampling_params a list of wrong length", {"input_ids": [1], "sampling_params": [{}, {}]}, 400),
    ("return_logprob a string", {"input_ids": [1], "return_logprob": "yes"}, 400),
    ("logprob_start_len too big", {"input_ids": [1], "return_logprob": True, "logprob_start_len": 5}, 400),
    ("top_logprobs_num too big", {"input_ids": [1], "return_logprob": True, "top_logprobs_num": 100000}, 400),
    ("rid a number", {"input_ids": [1], "rid": 5}, 400),
    ("batch with a bad member", {"input_ids": [[1], "x"]}, 400),
    ("weight_version a number", {"input_ids": [1], "weight_version": 3}, 400),
    ("exact_version a list", {"input_ids": [1], "weight_version": {"exact_version": [1]}}, 400),
    ("min_required_version not a number", {"input_ids": [1], "weight_version": {"min_required_version": "x"}}, 400),
    ("min_required_version huge", {"input_ids": [1], "weight_version": {"min_required_version": 1e300}}, 400),
    ("pinned to another version", {"input_ids": [1], "weight_version": {"exact_version": "v999"}}, 400),
    ("return_dsa_topk a string", {"input_ids": [1], "return_dsa_topk": "yes"}, 400),
    ("return_indexer_topk a number", {"input_ids": [1], "return_indexer_topk": 1}, 400),
]


def post_oversized(port, n):
    """POST n bytes of spaces; the server may answer (413) before reading them all."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", "/generate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(n))
    conn.endheaders()
    chunk = b" " * (1 << 20)
    try:
        for _ in range(n // len(chunk)):
            conn.send(chunk)
    except OSError:
        pass  # the server stopped reading: its answer is already on the way
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def test_bad_requests(server):
    field_named = {"temperature a string": "temperature", "negative temperature": "temperature",
                   "max_new_tokens beyond context": "max_new_tokens", "id out of range": "input_ids[1]", "text": "text",
                   "top_k 0": "top_k", "return_logprob a string": "return_logprob", "no input_ids": "input_ids",
                   "exact_version a list": "exact_version", "pinned to another version": "weight_version",
                   "return_dsa_topk a string": "return_dsa_topk"}
    for what, body, want in BAD:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, data = server.request("POST", "/generate", raw=raw, headers={"Content-Type": "application/json"})
        assert status == want, (what, status, data[:200])
        err = json.loads(data)["error"]
        assert err["message"] and err["code"] == want, what
        if what in field_named:
            assert field_named[what] in err["message"], (what, err)
        assert server.request("GET", "/health")[0] == 200, f"/health failed after {what}"
    # Unknown keys and the router's extra fields are accepted.
    out = server.generate({"input_ids": [1, 2], "sampling_params": {"max_new_tokens": 2, "skip_special_tokens": True, "n": 1},
                           "model": "x", "log_metrics": True, "return_hidden_states": False, "no_logs": False,
                           "return_text_in_logprobs": False, "something_new": {"a": 1}})
    assert len(out["output_ids"]) >= 1
    # An unknown route, a body over the limit.
    status, data = server.request("GET", "/nope")
    assert status == 404 and json.loads(data)["error"]["message"]
    status, data = post_oversized(server.port, 65 << 20)
    assert status == 413 and json.loads(data)["error"]["code"] == 413, (status, data)
    assert server.request("GET", "/health")[0] == 200
    # Garbage on the socket (not HTTP at all): the connection is dropped, the server stays up.
    with socket.create_connection(("127.0.0.1", server.port)) as c:
        c.sendall(bytes(range(256)) * 16)
        c.settimeout(5)
        try:
            c.recv(1000)
        except OSError:
            pass
    assert server.request("GET", "/health")[0] == 200


def test_api_key():
    s = Server("--api-key", "sekrit")
    try:
        assert s.request("GET", "/health")[0] == 200
        for path in ["/get_model_info", "/server_info", "/get_weight_version"]:
            status, data = s.request("GET", path)
            assert status == 401 and json.loads(data)["error"]["code"] == 401
        status, _ = s.request("POST", "/generate", {"input_ids": [1]}, headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _ = s.request("POST", "/generate", {"input_ids": [1], "sampling_params": {"max_new_tokens": 1}},
                              headers={"Authorization": "Bearer sekrit"})
        assert status == 200
    finally:
        s.proc.send_signal(signal.SIGINT)  # SIGINT shuts down as cleanly as SIGTERM
        s.proc.wait(timeout=20)
        assert s.stop() == 0


def test_stop_token(server, model):
    """A stop id ends the answer with finish_reason stop (the id kept), as the library."""
    greedy = server.generate({"input_ids": PROMPT, "sampling_params": {"temperature": 0, "max_new_tokens": 8, "ignore_eos": True}})
    stop = greedy["output_ids"][3]
    sp = dict(temperature=0, max_new_tokens=8, ignore_eos=True, stop_token_ids=[stop])
    out = server.generate({"input_ids": PROMPT, "sampling_params": sp, "return_logprob": True})
    ref = library(model, PROMPT, 8, **lib_kwargs(sp))
    assert ref.finish_reason == "stop"
    check_equal(out, ref, PROMPT)
    assert out["meta_info"]["finish_reason"] == {"type": "stop", "matched": stop} and out["output_ids"][-1] == stop
    # max_new_tokens 0: nothing generated, finish length 0.
    out = server.generate({"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 0}})
    assert out["output_ids"] == [] and out["meta_info"]["finish_reason"] == {"type": "length", "length": 0}


def bodies_for_batching(k):
    return [{"input_ids": [(7 * i + j) % 300 for j in range(1 + i % 6)],
             "sampling_params": dict(temperature=0.9, top_k=50, max_new_tokens=3 + 5 * (i % 4), sampling_seed=1000 + i,
                                     ignore_eos=i % 2 == 0),
             "return_logprob": True} for i in range(k)]


def run_concurrently(server, bodies):
    results = [None] * len(bodies)

    def run(i):
        results[i] = server.generate(bodies[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    return threads, results


def wait_queued(server, n):
    deadline = time.time() + 20
    while server.json("GET", "/server_info")[1]["num_queue_reqs"] < n:
        assert time.time() < deadline, "requests did not queue"
        time.sleep(0.02)


def test_requests_decode_together(server, model):
    """Paused, 8 requests queue; continued, they prefill in one batch and step together, leaving
    at different steps: each answer equals the library's for the request alone."""
    bodies = bodies_for_batching(8)
    assert server.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
    threads, results = run_concurrently(server, bodies)
    wait_queued(server, 8)
    assert server.request("POST", "/continue_generation", {})[0] == 200
    for t in threads:
        t.join(timeout=60)
    for body, got in zip(bodies, results):
        sp = body["sampling_params"]
        check_equal(got, library(model, body["input_ids"], sp["max_new_tokens"], **lib_kwargs(sp)), body["input_ids"])


def test_max_running_requests_and_client():
    """With at most 3 running, 10 requests queue and join as others leave; the Python client
    gives the same answers."""
    from glm5.client import Client, ServerError

    s = Server("--max-running-requests", "3")
    ref = glm5.Model(TINY)
    try:
        bodies = bodies_for_batching(10)
        assert s.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
        threads, results = run_concurrently(s, bodies)
        wait_queued(s, 10)
        assert s.request("POST", "/continue_generation", {})[0] == 200
        for t in threads:
            t.join(timeout=60)
        c = Client(s.url)
        assert c.health() and c.weight_version() == "default"
        for body, got in zip(bodies, results):
            sp = body["sampling_params"]
            check_equal(got, library(ref, body["input_ids"], sp["max_new_tokens"], **lib_kwargs(sp)), body["input_ids"])
            again = c.generate(body["input_ids"], sp, return_logprob=True)
            assert again["output_ids"] == got["output_ids"]
            assert again["meta_info"]["output_token_logprobs"] == got["meta_info"]["output_token_logprobs"]
        chunks = list(c.generate_stream(bodies[0]["input_ids"], bodies[0]["sampling_params"]))
        assert chunks[-1]["output_ids"] == results[0]["output_ids"]
        with pytest.raises(ServerError) as e:
            c.generate([1], {"temperature": -1})
        assert e.value.status == 400 and "temperature" in e.value.message
    finally:
        assert s.stop() == 0


def test_shutdown_with_requests_in_flight():
    """SIGTERM while requests wait (generation paused): they are answered (aborted, with a reason),
    and the server exits 0."""
    s = Server()
    bodies = bodies_for_batching(3)
    assert s.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
    threads, results = run_concurrently(s, bodies)
    wait_queued(s, 3)
    s.proc.terminate()
    for t in threads:
        t.join(timeout=30)
    assert s.proc.wait(timeout=30) == 0
    for r in results:
        fr = r["meta_info"]["finish_reason"]
        assert fr["type"] == "abort" and "shutting down" in fr["message"], fr
