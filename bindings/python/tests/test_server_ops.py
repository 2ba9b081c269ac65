"""glm5 serve operations: GET /metrics (scraped and parsed as Prometheus text) and --weights-watch
(publish-only weight sync: folders appearing while the server runs)."""

from __future__ import annotations

import re
import shutil
import time

import pytest

import glm5
from test_server import (BINARY, DELTA, PROMPT, TINY, TINY_V2, Server, check_equal, lib_kwargs, library)

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is missing: run `make build` first")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(server):
    """{(name, labels): value} from the Prometheus text format; checks every line's shape."""
    status, raw = server.request("GET", "/metrics")
    assert status == 200
    out = {}
    for line in raw.decode().splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def test_metrics():
    s = Server()
    try:
        before = scrape(s)
        assert before[("glm5_num_running_reqs", "")] == 0 and before[("glm5_num_queue_reqs", "")] == 0
        ns = [3, 5, 1, 7]
        prompts = [PROMPT[: 2 + i] for i in range(len(ns))]
        for p, n in zip(prompts, ns):
            s.generate({"input_ids": p, "sampling_params": {"max_new_tokens": n, "ignore_eos": True}})
        s.generate({"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 0}})
        assert s.json("POST", "/generate", {"input_ids": [1], "weight_version": {"exact_version": "nope"}})[0] == 400
        m = scrape(s)
        assert m[("glm5_num_requests_total", '{finish="length"}')] == len(ns) + 1
        assert m[("glm5_num_requests_total", '{finish="error"}')] == 1
        assert m[("glm5_prompt_tokens_total", "")] == sum(map(len, prompts)) + len(PROMPT) + 1
        assert m[("glm5_generation_tokens_total", "")] == sum(ns)
        # Every prompt but the first extends an earlier one: the kept sessions served them.
        assert m[("glm5_cached_tokens_total", "")] > 0
        assert m[("glm5_time_to_first_token_seconds_count", "")] == len(ns)
        assert m[("glm5_time_per_output_token_seconds_count", "")] == sum(n - 1 for n in ns)
        assert m[("glm5_e2e_request_latency_seconds_count", "")] == len(ns) + 2
        assert m[("glm5_time_to_first_token_seconds_sum", "")] > 0
        inf = [v for (k, lab), v in m.items() if k == "glm5_time_to_first_token_seconds_bucket" and 'le="+Inf"' in lab]
        assert inf == [len(ns)]
        from glm5.client import Client
        assert "glm5_generation_tokens_total %d" % sum(ns) in Client(s.url).metrics().splitlines()
    finally:
        assert s.stop() == 0


def wait_version(server, want, timeout=30):
    deadline = time.time() + timeout
    while True:
        v = server.json("GET", "/get_weight_version")[1]["weight_version"]
        if v == want:
            return
        assert time.time() < deadline, f"weight version stayed {v}, expected {want}"
        time.sleep(0.1)


def test_weights_watch(tmp_path):
    """A delta folder is applied once its DONE marker appears; a full checkpoint folder after it;
    each changes the live version to the folder's number and the answers to the new weights'."""
    sp = dict(temperature=0.8, max_new_tokens=8, sampling_seed=11, ignore_eos=True)
    body = {"input_ids": PROMPT, "sampling_params": sp, "return_logprob": True}
    s = Server("--weights-watch", str(tmp_path), "--weights-watch-interval", "0.1")
    try:
        before = s.generate(body)
        v1 = tmp_path / "weight_v000001"
        v1.mkdir()
        for f in DELTA.iterdir():
            if f.name != "DONE":
                shutil.copy(f, v1 / f.name)
        time.sleep(1.0)  # ten passes: incomplete, not applied
        assert s.json("GET", "/get_weight_version")[1]["weight_version"] == "default"
        (v1 / "DONE").touch()
        wait_version(s, "1")
        after = s.generate(body)
        assert after["meta_info"]["weight_version"] == "1" and after["output_ids"] != before["output_ids"]
        check_equal(after, library(glm5.Model(TINY_V2), PROMPT, 8, **lib_kwargs(sp)), PROMPT)
        # A full checkpoint (the original weights) as version 3; a stray name is ignored.
        (tmp_path / "notes").mkdir()
        v3 = tmp_path / "weight_v000003"
        v3.mkdir()
        for f in ["config.json", "model.safetensors"]:
            shutil.copy(TINY / f, v3 / f)
        (v3 / "DONE").touch()
        wait_version(s, "3")
        again = s.generate(body)
        check_equal(again, library(glm5.Model(TINY), PROMPT, 8, **lib_kwargs(sp)), PROMPT)
        assert again["output_ids"] == before["output_ids"]
        # An older number appearing later is not applied.
        shutil.copytree(v1, tmp_path / "weight_v000002")
        time.sleep(1.0)
        assert s.json("GET", "/get_weight_version")[1]["weight_version"] == "3"
    finally:
        assert s.stop() == 0
    log = s.proc.stderr.read()
    assert "applied weight_v000001" in log and "applied weight_v000003" in log and "weight_v000002" not in log


def test_client_gone_frees_its_job():
    """A client that closes its connection while its (non-streaming) request waits gets its job
    aborted: it leaves the queue. Requests on a kept-alive connection are unaffected."""
    import http.client
    import json
    import socket

    from test_server import wait_queued

    s = Server()
    try:
        assert s.request("POST", "/pause_generation", {"mode": "in_place"})[0] == 200
        body = json.dumps({"input_ids": PROMPT, "rid": "gone", "sampling_params": {"max_new_tokens": 4}}).encode()
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        wait_queued(s, 1)
        c.close()
        deadline = time.time() + 10
        while s.json("GET", "/server_info")[1]["num_queue_reqs"] != 0:
            assert time.time() < deadline, "the job of a client that went away is still queued"
            time.sleep(0.05)
        assert s.request("POST", "/continue_generation", {})[0] == 200
        # Two requests on one kept-alive connection, then the connection closes: both answered.
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for seed in range(2):
            conn.request("POST", "/generate", json.dumps({"input_ids": PROMPT, "sampling_params": {"max_new_tokens": 3, "sampling_seed": seed, "ignore_eos": True}}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and len(json.loads(r.read())["output_ids"]) == 3
        conn.close()
        assert s.request("GET", "/health")[0] == 200
    finally:
        assert s.stop() == 0
    log = s.proc.stderr.read()
    assert "request gone: the client went away" in log and "abort(aborted in the waiting queue)" in log
    assert log.count("the client went away") == 1, log


def test_grpo_example():
    """examples/python/grpo_client.py runs against a server: 8 trajectories, 7 of them forked from
    the first's prompt (they are admitted together)."""
    import os
    import subprocess
    import sys

    from test_server import REPO

    s = Server()
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO / "bindings" / "python"))
        out = subprocess.run([sys.executable, str(REPO / "examples" / "python" / "grpo_client.py"), s.url],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        seeds = [line for line in out.stdout.splitlines() if line.startswith("seed ")]
        assert len(seeds) == 8 and sum(line.endswith(f"{len(PROMPT) - 1} prompt tokens reused") for line in seeds) == 7, out.stdout
        assert len(out.stdout.splitlines()) == 8 + 8 * 12
    finally:
        assert s.stop() == 0
