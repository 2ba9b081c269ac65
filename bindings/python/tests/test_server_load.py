"""A bounded load test of `glm5 serve` on loopback (`make test-load`; skipped otherwise, it is not
part of `make check`): 32 concurrent clients send seeded requests; zero errors, and every answer
equals the same request served alone (by a second server, with prefix reuse off, one request at
a time). Prints p50/p99 latency and aggregate generated tokens/s against single-request
throughput. Bounded: a fixed number of requests, a deadline, and servers stopped at the end."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from test_server import BINARY, TINY, free_port

pytestmark = [
    pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is missing: run `make build` first"),
    pytest.mark.skipif(os.environ.get("GLM5_LOAD_TEST") != "1", reason="the load test runs with `make test-load` (GLM5_LOAD_TEST=1)"),
]

CLIENTS = int(os.environ.get("GLM5_LOAD_CLIENTS", "32"))
PER_CLIENT = int(os.environ.get("GLM5_LOAD_PER_CLIENT", "6"))
DEADLINE_S = 600


class Quiet:
    """A server whose log goes to a file (a pipe would fill up under load)."""

    def __init__(self, log_path, *extra):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([str(BINARY), "serve", str(TINY), "--port", str(self.port), *extra],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while True:
            assert self.proc.poll() is None, open(log_path).read()
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "no /health within 30 s"
            time.sleep(0.05)

    def generate(self, body):
        req = urllib.request.Request(self.url + "/generate", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=DEADLINE_S) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


def body(c, k):
    """Client c's k-th request: prompts of 4-60 tokens (some sharing a prefix: GRPO-like groups),
    16-64 new tokens, a seed of its own."""
    i = c * PER_CLIENT + k
    group = i % 8
    prompt = [(31 * group + j) % 250 + 1 for j in range(4 + (group * 7) % 57)] + [i % 200 + 1]
    return {"input_ids": prompt, "rid": f"load-{i}", "return_logprob": True,
            "sampling_params": {"temperature": 0.9, "top_p": 0.95, "max_new_tokens": 16 + (i * 5) % 49,
                                "sampling_seed": 7000 + i, "ignore_eos": i % 3 == 0}}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def test_load(tmp_path):
    bodies = {(c, k): body(c, k) for c in range(CLIENTS) for k in range(PER_CLIENT)}
    loaded = Quiet(tmp_path / "loaded.log", "--max-running-requests", str(CLIENTS))
    results, latencies, errors = {}, [], []
    lock = threading.Lock()

    def client(c):
        for k in range(PER_CLIENT):
            t0 = time.perf_counter()
            try:
                out = loaded.generate(bodies[(c, k)])
            except Exception as e:  # noqa: BLE001 - every error is counted and reported
                with lock:
                    errors.append((c, k, repr(e)))
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                results[(c, k)] = out

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, DEADLINE_S - (time.perf_counter() - t0)))
        wall = time.perf_counter() - t0
        assert not any(t.is_alive() for t in threads), "clients did not finish before the deadline"
    finally:
        assert loaded.stop() == 0
    assert errors == [], errors[:5]
    assert len(results) == CLIENTS * PER_CLIENT

    alone = Quiet(tmp_path / "alone.log", "--cache-budget", "0", "--max-running-requests", "1")
    try:
        t1 = time.perf_counter()
        single = {key: alone.generate(b) for key, b in bodies.items()}
        single_wall = time.perf_counter() - t1
    finally:
        assert alone.stop() == 0
    for key, out in results.items():
        ref = single[key]
        assert out["output_ids"] == ref["output_ids"], key
        assert out["meta_info"]["output_token_logprobs"] == ref["meta_info"]["output_token_logprobs"], key
        assert out["meta_info"]["input_token_logprobs"] == ref["meta_info"]["input_token_logprobs"], key
    generated = sum(len(o["output_ids"]) for o in results.values())
    cached = sum(o["meta_info"]["cached_tokens"] for o in results.values())
    print(f"\n[load] {CLIENTS} clients x {PER_CLIENT} requests = {len(results)} requests, 0 errors, "
          f"every answer equal to the request served alone")
    print(f"[load] latency p50 {pct(latencies, 0.5) * 1000:.1f} ms, p99 {pct(latencies, 0.99) * 1000:.1f} ms; "
          f"wall {wall:.2f} s; {cached} prompt tokens reused")
    print(f"[load] aggregate {generated / wall:.0f} generated tokens/s concurrent vs "
          f"{generated / single_wall:.0f} tokens/s one request at a time ({generated / wall / (generated / single_wall):.2f}x)")
