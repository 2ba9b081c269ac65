"""Models: loading a checkpoint folder and describing it."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import os
import threading
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import Glm5Error, Status, check
from ._owned import _Owned
from ._lib import (
    LIB,
    c_float_p,
    c_int32_p,
    glm5_model_info,
    glm5_model_p,
    glm5_sample_output_p,
    glm5_sampling_params_p,
    glm5_session_p,
    new_model_info,
    new_model_params,
    text,
)
from ._session import (
    Logits,
    SampleResult,
    Session,
    TokenIds,
    _claim,
    _logits_arg,
    _per_session,
    _SampleCall,
    _sampling_keywords,
    _session_list,
    _temperature_arg,
    as_token_array,
)

_INT32_MAX = 2**31 - 1


class DType(enum.IntEnum):
    """Mirrors ``glm5_dtype`` (values pinned by the header)."""

    F32 = 0
    BF16 = 1
    F16 = 2
    F8_E4M3 = 3
    F8_E5M2 = 4
    I8 = 5
    U8 = 6
    I16 = 7
    I32 = 8
    I64 = 9
    F64 = 10
    BOOL = 11
    U16 = 12
    U32 = 13
    U64 = 14


def dtype_name(dtype: Union[int, DType]) -> str:
    """glm5_dtype_name: the safetensors name of a dtype ("F32", "BF16", ...) or "unknown"."""
    return text(LIB.glm5_dtype_name(int(dtype)))


def dtype_names(mask: int) -> Tuple[str, ...]:
    """The names of the dtypes whose bits are set in a glm5_model_info.weight_dtypes mask."""
    return tuple(dtype_name(d) for d in range(32) if mask & (1 << d))


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """glm5_model_info: facts about a loaded model (see include/glm5.h for each field)."""

    vocab_size: int
    hidden_size: int
    n_layers: int
    n_dense_layers: int
    n_moe_layers: int
    n_heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    n_routed_experts: int
    n_experts_per_tok: int
    n_shared_experts: int
    index_n_heads: int
    index_head_dim: int
    index_topk: int
    max_position_embeddings: int
    has_mtp: bool
    n_mtp_layers: int
    weight_dtypes: Tuple[str, ...]  # names, e.g. ("F32", "BF16")
    weight_dtype_mask: int  # the raw bit mask: bit (1 << glm5_dtype) per dtype present
    n_parameters: int
    weight_file_bytes: int
    weight_formats: tuple  # Linear weight formats present: "float", "fp8_block", "int4_group"
    resident_weight_bytes: int  # memory the weights take once all are used (mapped + copied)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def _from_c(cls, c: glm5_model_info) -> "ModelInfo":
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "weight_dtypes":
                values[f.name] = dtype_names(c.weight_dtypes)
            elif f.name == "weight_dtype_mask":
                values[f.name] = int(c.weight_dtypes)
            elif f.name == "weight_formats":
                values[f.name] = tuple(n for bit, n in ((1, "float"), (2, "fp8_block"), (4, "int4_group")) if c.weight_formats & bit)
            elif f.name == "has_mtp":
                values[f.name] = bool(c.has_mtp)
            else:
                values[f.name] = int(getattr(c, f.name))
        return cls(**values)


def _closed_error(what: str) -> Glm5Error:
    return Glm5Error(Status.INVALID_ARGUMENT, f"{what} is closed")


def _threads_arg(threads: Optional[int]) -> int:
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int or None, not {type(threads).__name__}")
    if not -(2**31) <= threads <= _INT32_MAX:
        # Out of int32: the library would see a wrapped value, so refuse here, the same way.
        raise Glm5Error(Status.INVALID_ARGUMENT, f"threads is {threads}, must be in [0, 1024]")
    return threads


class Model(_Owned):
    """A loaded checkpoint (glm5_model): read-only and shareable between threads.

    ``Model(path, threads=None)`` loads a Hugging Face folder (config.json plus safetensors);
    ``threads`` is the number of compute threads, None or 0 for one per available CPU. Free it with
    :meth:`close`, a ``with`` block, or by dropping the last reference.
    """

    _free_name = "glm5_model_free"

    def __init__(self, path: Union[str, bytes, "os.PathLike[str]"], threads: Optional[int] = None):
        self._handle: Optional[int] = None  # first, so that __del__ works whatever happens below
        self._lock = threading.Lock()
        self.path = os.fsdecode(path)
        params = new_model_params()
        params.n_threads = _threads_arg(threads)
        handle = glm5_model_p()
        check(LIB.glm5_model_load(os.fsencode(path), ctypes.byref(params), ctypes.byref(handle)))
        self._handle = handle.value
        self.threads = params.n_threads

    # -- lifetime ---------------------------------------------------------------------------------

    def _ptr(self) -> int:
        """The live handle for a C call; Glm5Error(INVALID_ARGUMENT) once closed."""
        handle = self._handle
        if handle is None:
            raise _closed_error("model")
        return handle

    # -- queries ----------------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """glm5_model_get_info as a frozen dataclass."""
        c = new_model_info()
        check(LIB.glm5_model_get_info(self._ptr(), ctypes.byref(c)))
        return ModelInfo._from_c(c)

    # -- sessions and scoring ---------------------------------------------------------------------

    def session(self, max_tokens: Optional[int] = None) -> Session:
        """A new empty :class:`Session` on this model (glm5_session_new).

        ``max_tokens``: the most tokens it may hold; None or 0 for the model's
        max_position_embeddings, which is also the upper bound (InvalidArgumentError above it).
        The session keeps the weights alive, so it may outlive this model's :meth:`close`.
        """
        info = self.info
        return Session(self._ptr(), info.vocab_size, info.max_position_embeddings, max_tokens)

    def score(self, ids: TokenIds, temperature: Optional[float] = None) -> np.ndarray:
        """Log-probabilities of a whole sequence from an empty context (glm5_model_score).

        Returns float32 ``[len(ids)]``: ``log p(ids[i] | ids[:i])`` at temperature 1 (the raw
        distribution), NaN at index 0. Bitwise equal to the logprobs of appending the same ids to a
        new session in any split. Safe to call from many threads at once.

        With ``temperature=T`` (glm5_model_score_scaled): the log-softmax of logits / T instead,
        bitwise what :meth:`Session.sample` at temperature T reported for the same tokens (what
        an RL trainer recomputes); T = 0 gives the raw values.
        """
        arr = as_token_array(ids)
        out = np.empty(len(arr), dtype=np.float32)
        if temperature is None:
            check(LIB.glm5_model_score(self._ptr(), arr.ctypes.data_as(c_int32_p), len(arr), out.ctypes.data_as(c_float_p)))
        else:
            t = _temperature_arg(temperature)
            check(
                LIB.glm5_model_score_scaled(
                    self._ptr(), arr.ctypes.data_as(c_int32_p), len(arr), t, None, out.ctypes.data_as(c_float_p)
                )
            )
        return out

    @property
    def eos_token_ids(self) -> Tuple[int, ...]:
        """The end-of-sequence ids that stop :meth:`Session.sample` (glm5_model_eos_token_ids):
        generation_config.json's eos_token_id, else config.json's."""
        handle = self._ptr()
        count = ctypes.c_size_t()
        status = LIB.glm5_model_eos_token_ids(handle, None, 0, ctypes.byref(count))
        if status != Status.BUFFER_TOO_SMALL:
            check(status)
        if count.value == 0:
            return ()
        out = np.empty(count.value, dtype=np.int32)
        check(LIB.glm5_model_eos_token_ids(handle, out.ctypes.data_as(c_int32_p), out.size, ctypes.byref(count)))
        if count.value != out.size:
            raise Glm5Error(Status.INTERNAL, f"the model reported {out.size} eos id(s), then {count.value}")
        return tuple(int(v) for v in out)

    # -- batches ----------------------------------------------------------------------------------

    def sample_batch(
        self,
        sessions: Sequence[Session],
        n: int,
        params: Optional[Sequence[Optional[Mapping[str, Any]]]] = None,
        **common: Any,
    ) -> List[SampleResult]:
        """Sample on many sessions of this model at once (glm5_sample_batch): one forward pass
        per step advances every running session by a token. A list of :class:`SampleResult`,
        one per session, each bitwise what :meth:`Session.sample` on that session alone gives.

        ``n`` and the keywords (``temperature=``, ``seed=``, ... as :meth:`Session.sample`) apply
        to every session; ``params``, if given, has one entry per session: None or a dict of the
        same keywords (``"n"`` included) that overrides them for that session. The sessions must
        be distinct; while the call runs each is in use (other calls on it raise BusyError;
        :meth:`Session.cancel` stops that one). On any failure no session changes and the error
        of the library's status is raised, its message naming the session's index.
        """
        sessions = _session_list(sessions)
        common = _sampling_keywords(common, "keyword arguments")  # never holds n: a named parameter
        if params is None:
            per = [{} for _ in sessions]
        else:
            per = [
                {} if d is None else _sampling_keywords(d, f"params[{i}]")
                for i, d in enumerate(_per_session("params", params, len(sessions)))
            ]
        calls = []
        for s, d in zip(sessions, per):
            merged = {**common, **d}
            calls.append(_SampleCall(merged.pop("n", n), s.max_tokens, merged))
        count = len(sessions)
        with _claim(sessions, self._ptr()) as handles:
            c_sessions = (glm5_session_p * count)(*handles)
            c_params = (glm5_sampling_params_p * count)(*[ctypes.pointer(c.params) for c in calls])
            c_outs = (glm5_sample_output_p * count)(*[ctypes.pointer(c.out) for c in calls])
            check(LIB.glm5_sample_batch(c_sessions, count, c_params, c_outs))
        return [c.result() for c in calls]

    def append_batch(
        self,
        sessions: Sequence[Session],
        chunks: Sequence[TokenIds],
        logits: Union[str, Logits] = "none",
        logprobs: bool = False,
    ) -> Optional[List[np.ndarray]]:
        """Append ``chunks[i]`` to ``sessions[i]`` for every i in one forward pass
        (glm5_append_batch, batched prefill; chunks may differ in length). Each session ends
        bitwise as :meth:`Session.append` of its chunk alone would leave it; ``logits`` says what
        each keeps (read it with :meth:`Session.logits`). Returns, with ``logprobs=True``, the raw
        logprobs of each chunk (float32 ``[len(chunks[i])]``, as
        :meth:`Session.append_with_logprobs`), else None. On any failure no session changes.
        """
        mode = _logits_arg(logits)
        if not isinstance(logprobs, (bool, np.bool_)):
            raise TypeError(f"logprobs must be a bool, not {type(logprobs).__name__}")
        sessions = _session_list(sessions)
        count = len(sessions)
        arrays = [as_token_array(c) for c in _per_session("chunks", chunks, count)]
        lps = [np.empty(len(a), dtype=np.float32) for a in arrays] if logprobs else None
        with _claim(sessions, self._ptr()) as handles:
            c_sessions = (glm5_session_p * count)(*handles)
            c_tokens = (c_int32_p * count)(*[a.ctypes.data_as(c_int32_p) for a in arrays])
            c_counts = (ctypes.c_size_t * count)(*[len(a) for a in arrays])
            c_logprobs = (c_float_p * count)(*[a.ctypes.data_as(c_float_p) for a in lps]) if lps is not None else None
            check(LIB.glm5_append_batch(c_sessions, count, c_tokens, c_counts, int(mode), c_logprobs))
        return lps

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"threads={self.threads}"
        return f"<glm5.Model {self.path!r} {state}>"
