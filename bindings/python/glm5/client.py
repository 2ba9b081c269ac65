"""A small client for `glm5 serve` (SGLang's native HTTP API), standard library only.

    from glm5.client import Client
    c = Client("http://127.0.0.1:30000")
    out = c.generate([11, 42, 7], {"temperature": 0.8, "max_new_tokens": 64, "sampling_seed": 1})
    out["output_ids"], out["meta_info"]["output_token_logprobs"]   # [[logprob, id, None], ...]

`generate` sends what slime's `sglang_rollout.generate` sends (input_ids, sampling_params,
return_logprob) and returns SGLang's answer dict unchanged; a list of prompts is a batch (a list
of answers). Errors raise `ServerError` with the server's status and message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union


class ServerError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(self, url: str = "http://127.0.0.1:30000", api_key: Optional[str] = None, timeout: float = 600.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _open(self, method: str, path: str, body: Optional[dict]):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                msg = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                try:
                    msg = json.loads(raw)["message"]
                except (ValueError, KeyError, TypeError):
                    msg = raw.decode(errors="replace")
            raise ServerError(e.code, msg) from None

    def request(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        with self._open(method, path, body) as r:
            raw = r.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def generate(self, input_ids: Union[Sequence[int], Sequence[Sequence[int]]],
                 sampling_params: Union[None, Dict[str, Any], Sequence[Dict[str, Any]]] = None,
                 return_logprob: bool = True, **extra: Any) -> Union[dict, List[dict]]:
        """POST /generate; for a batch (a list of prompts), sampling_params may be one dict for all
        or a list with one per prompt. Extra keys (rid, top_logprobs_num, logprob_start_len,
        return_routed_experts, weight_version, ...) are passed through."""
        if isinstance(sampling_params, (list, tuple)):
            sp: Any = [dict(p) for p in sampling_params]
        else:
            sp = dict(sampling_params or {})
        body = {"input_ids": [list(map(int, p)) for p in input_ids] if len(input_ids) and hasattr(input_ids[0], "__len__")
                else list(map(int, input_ids)),
                "sampling_params": sp, "return_logprob": return_logprob, **extra}
        return self.request("POST", "/generate", body)

    def generate_stream(self, input_ids: Sequence[int], sampling_params: Optional[Dict[str, Any]] = None,
                        return_logprob: bool = True, **extra: Any) -> Iterator[dict]:
        """POST /generate with stream: each chunk (the output so far) as it arrives."""
        body = {"input_ids": list(map(int, input_ids)), "sampling_params": dict(sampling_params or {}),
                "return_logprob": return_logprob, "stream": True, **extra}
        with self._open("POST", "/generate", body) as r:
            for line in r:
                line = line.strip()
                if not line.startswith(b"data: "):
                    continue
                payload = line[len(b"data: "):]
                if payload == b"[DONE]":
                    return
                chunk = json.loads(payload)
                if "error" in chunk:
                    raise ServerError(chunk["error"].get("code", 500), chunk["error"]["message"])
                yield chunk

    def health(self) -> bool:
        try:
            with self._open("GET", "/health", None) as r:
                return r.status == 200
        except (OSError, ServerError):
            return False

    def weight_version(self) -> str:
        return self.request("GET", "/get_weight_version")["weight_version"]

    def update_weights_from_disk(self, model_path: str, weight_version: Optional[str] = None, load_format: Optional[str] = None) -> dict:
        body: Dict[str, Any] = {"model_path": str(model_path)}
        if weight_version is not None:
            body["weight_version"] = weight_version
        if load_format is not None:
            body["load_format"] = load_format
        return self.request("POST", "/update_weights_from_disk", body)

    def abort(self, rid: Optional[str] = None) -> None:
        self.request("POST", "/abort_request", {"rid": rid} if rid else {"abort_all": True})

    def flush_cache(self) -> None:
        """Empty the server's prefix cache (the sessions kept for reuse)."""
        self.request("POST", "/flush_cache")

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        return self.request("GET", "/metrics")

    def server_info(self) -> dict:
        return self.request("GET", "/server_info")

    def model_info(self) -> dict:
        return self.request("GET", "/model_info")
