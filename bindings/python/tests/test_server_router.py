"""Scale-out: two `glm5 serve` replicas behind the real sglang-router (PyPI `sglang-router`, the
gateway slime deploys), on loopback. Slime-shaped requests through the router (with the
X-SMG-Routing-Key header slime sets) equal a replica asked directly; with one replica killed the
router keeps serving from the other once its health check (every second here) has noticed. Skipped, with the reason, when sglang_router is not
installed (`make test-python` tries `pip install sglang-router`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from test_server import BINARY, Server, free_port

pytestmark = pytest.mark.skipif(not BINARY.exists(), reason=f"{BINARY} is missing: run `make build` first")

try:
    import sglang_router  # noqa: F401
    HAVE_ROUTER = True
except ImportError:
    HAVE_ROUTER = False


def post(url, body, headers=None, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def slime_body(i):
    """What slime's sglang_rollout.generate posts: input_ids, sampling_params, return_logprob."""
    prompt = [(13 * i + j) % 250 + 1 for j in range(3 + i % 9)]
    sp = {"temperature": 0.9, "top_p": 0.95, "top_k": -1, "max_new_tokens": 6 + i % 5, "stop_token_ids": [0],
          "skip_special_tokens": False, "no_stop_trim": True, "spaces_between_special_tokens": False,
          "sampling_seed": 1000 + i}
    return {"input_ids": prompt, "sampling_params": sp, "return_logprob": True}


def same(a, b):
    return (a["output_ids"] == b["output_ids"]
            and a["meta_info"]["output_token_logprobs"] == b["meta_info"]["output_token_logprobs"]
            and a["meta_info"]["finish_reason"] == b["meta_info"]["finish_reason"])


@pytest.mark.skipif(not HAVE_ROUTER, reason="sglang_router is not installed (pip install sglang-router): router test skipped")
def test_two_replicas_behind_sglang_router(tmp_path):
    a, b = Server(), Server()
    port = free_port()
    router_url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "router.log", "w")
    router = subprocess.Popen(
        [sys.executable, "-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port", str(port),
         "--worker-urls", a.url, b.url, "--policy", "cache_aware", "--log-level", "warn",
         "--health-check-interval-secs", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:  # both workers registered (the router probes /health, /server_info, /model_info)
            assert router.poll() is None, (tmp_path / "router.log").read_text()
            try:
                with urllib.request.urlopen(router_url + "/workers", timeout=5) as r:
                    workers = json.loads(r.read())["workers"]
                if len(workers) == 2 and all(w["is_healthy"] for w in workers):
                    break
            except OSError:
                pass
            assert time.time() < deadline, "the router did not register both replicas: " + (tmp_path / "router.log").read_text()
            time.sleep(0.2)
        for i in range(12):
            body = slime_body(i)
            status, via = post(router_url + "/generate", body, headers={"X-SMG-Routing-Key": f"group-{i % 3}"})
            assert status == 200, via
            status, direct = post(a.url + "/generate", body)
            assert status == 200 and same(via, direct), (i, via, direct)
        # The same prompt again through the router: both replicas have computed it (one through the
        # router, replica a directly), so whichever answers serves it from its kept session.
        body = dict(slime_body(0), sampling_params=dict(slime_body(0)["sampling_params"], sampling_seed=5))
        status, again = post(router_url + "/generate", body, headers={"X-SMG-Routing-Key": "group-0"})
        assert status == 200 and again["meta_info"]["cached_tokens"] == len(body["input_ids"]) - 1, again["meta_info"]
        # Kill one replica. A request the router sends there before its health check notices
        # fails (slime's client retries); once the replica is marked unhealthy, every request is
        # answered by the other.
        a.proc.kill()
        a.proc.wait(timeout=10)
        deadline = time.time() + 60
        while True:
            with urllib.request.urlopen(router_url + "/workers", timeout=5) as r:
                health = {w["url"]: w["is_healthy"] for w in json.loads(r.read())["workers"]}
            if not health.get(a.url, False) and health.get(b.url):
                break
            assert time.time() < deadline, f"the router still sees the killed replica as healthy: {health}"
            time.sleep(0.2)
        for i in range(12, 24):
            body = slime_body(i)
            status, via = post(router_url + "/generate", body, headers={"X-SMG-Routing-Key": f"group-{i % 3}"})
            assert status == 200, (i, via)
            status, direct = post(b.url + "/generate", body)
            assert status == 200 and same(via, direct), i
    finally:
        router.terminate()
        try:
            router.wait(timeout=20)
        except subprocess.TimeoutExpired:
            router.kill()
        log.close()
        b.stop()
        if a.proc.poll() is None:
            a.stop()
