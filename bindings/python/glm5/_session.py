"""Sessions: a token sequence and its caches (glm5_session), and token-id arrays."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import enum
import math
import operator
import os
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import Glm5Error, Status, check
from ._owned import _Owned
from ._lib import (
    LIB,
    MAX_TOP_LOGPROBS,
    c_float_p,
    c_int32_p,
    glm5_replay,
    glm5_session_p,
    new_record_info,
    new_replay,
    new_sample_output,
    new_sampling_params,
    new_session_params,
)

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
_SIZE_MAX = 2**63 - 1  # what this binding passes as a size_t count (the library's Int)

#: What :meth:`Session.append` and friends accept as token ids.
TokenIds = Union[Sequence[int], np.ndarray]


class Logits(enum.IntEnum):
    """Mirrors ``glm5_logits``: which logits an append keeps (values pinned by the header)."""

    NONE = 0  # none (the vocabulary projection is skipped)
    LAST = 1  # the last appended position: [vocab]
    ALL = 2  # every appended position: [n, vocab]


def _logits_arg(logits: Union[str, Logits]) -> Logits:
    if isinstance(logits, Logits):
        return logits
    if isinstance(logits, str):
        try:
            return Logits[logits.upper()]
        except KeyError:
            pass
        raise Glm5Error(Status.INVALID_ARGUMENT, f'logits is {logits!r}, must be "last", "all" or "none"')
    raise TypeError(f'logits must be "last", "all", "none" or a glm5.Logits, not {type(logits).__name__}')


def _count_arg(name: str, n, upper: Optional[int] = None) -> int:
    """A non-negative int (bool refused): TypeError for other types, Glm5Error otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")
    n = int(n)
    if n < 0:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"{name} is {n}, must be >= 0")
    if upper is not None and n > upper:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"{name} is {n}, must be at most {upper}")
    return n


def as_token_array(ids: TokenIds) -> np.ndarray:
    """Token ids as the C-contiguous int32 array the library reads.

    Accepts a 1-D sequence of Python ints or a 1-D numpy array of any integer dtype (a copy is
    made only when needed). Element types that are not integers (floats, bools, strings) raise
    TypeError; a shape that is not 1-D, or a value outside int32, raises glm5.InvalidArgumentError
    (a ValueError with status INVALID_ARGUMENT). Ids outside [0, vocab_size) are left for the
    library, which refuses them with INVALID_ARGUMENT naming the index.
    """
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"token ids must be a sequence of ints or an integer numpy array, not {type(ids).__name__}")
    if isinstance(ids, np.ndarray):
        arr = ids
    else:
        try:
            seq = list(ids)
        except TypeError:
            raise TypeError(
                f"token ids must be a sequence of ints or an integer numpy array, not {type(ids).__name__}"
            ) from None
        values = []
        for i, v in enumerate(seq):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"token id at index {i} is {type(v).__name__} {v!r}, not an int")
            values.append(operator.index(v))
        for i, v in enumerate(values):
            if not _INT32_MIN <= v <= _INT32_MAX:
                raise Glm5Error(Status.INVALID_ARGUMENT, f"token id {v} at index {i} is outside int32")
        return np.array(values, dtype=np.int32).reshape(len(values))
    if arr.ndim != 1:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"token ids must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must have an integer dtype, not {arr.dtype}")
    if arr.dtype != np.int32 and arr.size:
        bad = (arr < _INT32_MIN) | (arr > _INT32_MAX)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise Glm5Error(Status.INVALID_ARGUMENT, f"token id {int(arr[i])} at index {i} is outside int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _i32p(arr: np.ndarray):
    return arr.ctypes.data_as(c_int32_p)


def _f32p(arr: np.ndarray):
    return arr.ctypes.data_as(c_float_p)


# ---------------------------------------------------------------------------------------------
# Sampling parameters and results
#
# Python checks only what the library cannot see: types, and values that do not fit the C field
# (a negative count for a uint32, a seed outside uint64, a temperature that float32 rounds to 0).
# Ranges (temperature >= 0 and finite, top_p in (0, 1], min_p in [0, 1), top_k >= 0, at most
# MAX_TOP_LOGPROBS alternatives, stop ids in the vocabulary) are the library's, so that its
# messages, which name the field, are the ones seen.
# ---------------------------------------------------------------------------------------------

#: The keyword arguments of :meth:`Session.sample` besides ``n``, with their defaults (those of
#: glm5_sampling_params_init).
SAMPLING_DEFAULTS: Dict[str, Any] = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "seed": 0,
    "stop_token_ids": None,
    "ignore_eos": False,
    "top_logprobs": 0,
    "speculative": 0,
}

# glm5_finish_reason -> the name a SampleResult reports (GLM5_FINISH_NONE never comes back from a
# call that succeeded).
_FINISH_REASONS = {1: "length", 2: "stop", 3: "cancelled"}


def _real_arg(name: str, v) -> float:
    """A real number as a Python float (bool refused): TypeError for other types."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, not {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:  # an int too large for a double: the library sees (and refuses) an inf
        return math.inf if v > 0 else -math.inf


def _temperature_arg(v) -> float:
    t = _real_arg("temperature", v)
    if t != 0 and ctypes.c_float(t).value == 0:
        # float32 would turn it into 0, which means greedy: refuse rather than change the meaning.
        raise Glm5Error(Status.INVALID_ARGUMENT, f"temperature is {t!r}, which float32 rounds to 0 (greedy)")
    return t


def _int_arg(name: str, v, lo: int, hi: int, what: str) -> int:
    """An int (bool refused) that fits a C field of range [lo, hi]; `what` says the field's range."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    v = int(v)
    if not lo <= v <= hi:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"{name} is {v}, {what}")
    return v


def _flag_arg(name: str, v) -> bool:
    if not isinstance(v, (bool, np.bool_, int, np.integer)):
        raise TypeError(f"{name} must be a bool, not {type(v).__name__}")
    return bool(v)


def _sampling_keywords(kw: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """`kw` as a dict, TypeError for a key that is not a sampling parameter."""
    if not isinstance(kw, Mapping):
        raise TypeError(f"{where} must be a dict of sampling parameters or None, not {type(kw).__name__}")
    for key in kw:
        if key not in SAMPLING_DEFAULTS and key != "n":
            raise TypeError(f"{where}: unknown sampling parameter {key!r} (known: n, {', '.join(SAMPLING_DEFAULTS)})")
    return dict(kw)


@dataclasses.dataclass(frozen=True, eq=False)
class SampleResult:
    """What one sampling call generated on one session (glm5_sample_output).

    Arrays have one entry per generated token (every one of them was appended to the session):
    ``tokens`` int32; ``logprobs`` float32, raw (temperature 1, as :meth:`Model.score`);
    ``scaled_logprobs`` float32, log-softmax of logits / temperature (what an RL trainer
    recomputes; equal to the raw ones at temperature 0); ``processed_logprobs`` float32, in the
    distribution actually sampled from after top-k, top-p, min-p (0 at temperature 0).
    ``finish_reason`` is "length" (n tokens generated), "stop" (the last token is a stop id,
    ``stop_token_id``, else None) or "cancelled" (:meth:`Session.cancel`). With
    ``top_logprobs=N > 0``, ``top_ids`` int32 and ``top_logprobs`` float32 are ``[n_generated,
    N]``: the N most likely tokens at each step in rank order and their scaled logprobs; else None.
    ``weight_version`` is the version of the model's weights every one of these tokens was
    produced with (:attr:`Model.weight_version` when the call started; a sampling call never
    straddles a weight update).
    With ``speculative=k``, ``accepted`` int32 holds the drafts accepted at each verification step
    (0 ..= k; the mean + 1 is the mean accepted length); else None. Speculation changes nothing
    else: every other field is bit for bit what the same call without it returns.
    """

    tokens: np.ndarray
    logprobs: np.ndarray
    scaled_logprobs: np.ndarray
    processed_logprobs: np.ndarray
    finish_reason: str
    stop_token_id: Optional[int]
    top_ids: Optional[np.ndarray] = None
    top_logprobs: Optional[np.ndarray] = None
    weight_version: str = ""
    accepted: Optional[np.ndarray] = None


class _SampleCall:
    """One session's part of a sampling call: its glm5_sampling_params, its glm5_sample_output,
    and the arrays both point into (referenced here until the call has returned)."""

    def __init__(self, n, max_tokens: int, kw: Mapping[str, Any]):
        n = _count_arg("n", n)
        if n > max_tokens:  # cannot fit whatever the session holds; avoid a huge allocation
            raise Glm5Error(
                Status.CONTEXT_FULL, f"sampling {n} token(s) exceeds the session's maximum of {max_tokens}"
            )
        kw = {**SAMPLING_DEFAULTS, **kw}
        p = new_sampling_params()
        p.max_new_tokens = n
        p.temperature = _temperature_arg(kw["temperature"])
        p.top_k = _int_arg("top_k", kw["top_k"], _INT32_MIN, _INT32_MAX, "outside int32 (must be >= 0)")
        p.top_p = _real_arg("top_p", kw["top_p"])
        p.min_p = _real_arg("min_p", kw["min_p"])
        p.seed = _int_arg("seed", kw["seed"], 0, _UINT64_MAX, "must be in [0, 2**64)")
        p.ignore_eos = 1 if _flag_arg("ignore_eos", kw["ignore_eos"]) else 0
        k = _count_arg("top_logprobs", kw["top_logprobs"], _UINT32_MAX)
        p.n_top_logprobs = k
        p.speculative = _count_arg("speculative", kw["speculative"], _UINT32_MAX)
        self.stop_ids = None
        if kw["stop_token_ids"] is not None:
            self.stop_ids = as_token_array(kw["stop_token_ids"])
            if len(self.stop_ids):
                p.stop_token_ids = _i32p(self.stop_ids)
                p.n_stop_token_ids = len(self.stop_ids)
        self.params = p

        cap = max(n, 1)  # out->tokens must not be NULL, even for n = 0
        self.n_top = k
        self.tokens = np.empty(cap, dtype=np.int32)
        self.logprobs = np.empty(cap, dtype=np.float32)
        self.scaled = np.empty(cap, dtype=np.float32)
        self.processed = np.empty(cap, dtype=np.float32)
        self.top_ids = self.top_logprobs = None
        out = new_sample_output()
        out.capacity = cap
        out.tokens = _i32p(self.tokens)
        out.logprobs = _f32p(self.logprobs)
        out.scaled_logprobs = _f32p(self.scaled)
        out.processed_logprobs = _f32p(self.processed)
        if 0 < k <= MAX_TOP_LOGPROBS:
            self.top_ids = np.empty((cap, k), dtype=np.int32)
            self.top_logprobs = np.empty((cap, k), dtype=np.float32)
            out.top_ids = _i32p(self.top_ids)
            out.top_logprobs = _f32p(self.top_logprobs)
        # k > MAX_TOP_LOGPROBS: no arrays (their size is unbounded); the library refuses the value.
        self.accepted = None
        if p.speculative > 0:
            self.accepted = np.empty(cap, dtype=np.int32)
            out.accepted = _i32p(self.accepted)
        self.out = out

    def result(self) -> SampleResult:
        """The SampleResult of a call that succeeded."""
        out, cap = self.out, len(self.tokens)
        n = out.n_tokens
        reason = _FINISH_REASONS.get(out.finish_reason)
        if n > self.params.max_new_tokens or n > cap or reason is None:
            raise Glm5Error(
                Status.INTERNAL, f"the library reported {n} token(s) and finish_reason {out.finish_reason} "
                f"for max_new_tokens {self.params.max_new_tokens}"
            )
        if self.n_top > MAX_TOP_LOGPROBS:
            raise Glm5Error(Status.INTERNAL, f"the library accepted n_top_logprobs {self.n_top} > {MAX_TOP_LOGPROBS}")
        stop = int(out.stop_token_id) if reason == "stop" else None
        top = (self.top_ids[:n], self.top_logprobs[:n]) if self.top_ids is not None else (None, None)
        return SampleResult(
            tokens=self.tokens[:n],
            logprobs=self.logprobs[:n],
            scaled_logprobs=self.scaled[:n],
            processed_logprobs=self.processed[:n],
            finish_reason=reason,
            stop_token_id=stop,
            top_ids=top[0],
            top_logprobs=top[1],
            weight_version=out.weight_version.decode("utf-8", errors="replace"),
            accepted=self.accepted[: out.n_steps] if self.accepted is not None else None,
        )


def _session_list(sessions) -> List["Session"]:
    """A batch's sessions as a list; TypeError for anything that is not a Session."""
    if isinstance(sessions, (Session, str, bytes)):
        raise TypeError(f"sessions must be a list of glm5.Session, not {type(sessions).__name__}")
    try:
        out = list(sessions)
    except TypeError:
        raise TypeError(f"sessions must be a list of glm5.Session, not {type(sessions).__name__}") from None
    for i, s in enumerate(out):
        if not isinstance(s, Session):
            raise TypeError(f"sessions[{i}] is {type(s).__name__}, not a glm5.Session")
    return out


def _per_session(name: str, values, n: int) -> list:
    """A batch argument that has one entry per session, as a list of length n."""
    if isinstance(values, (str, bytes, Mapping)):
        raise TypeError(f"{name} must be a list with one entry per session, not {type(values).__name__}")
    try:
        out = list(values)
    except TypeError:
        raise TypeError(f"{name} must be a list with one entry per session, not {type(values).__name__}") from None
    if len(out) != n:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"{name} has {len(out)} entries for {n} session(s)")
    return out


@contextlib.contextmanager
def _claim(sessions: Sequence["Session"], model_handle: int) -> Iterator[List[int]]:
    """Hold every session of a batch for one call (as Session._use does for one): BusyError if
    another thread is in a call on one of them. Yields their handles in order. A session given
    twice is held once and passed twice, for the library to refuse with its own message."""
    held: List[Session] = []
    try:
        handles = []
        for i, s in enumerate(sessions):
            if not any(s is h for h in held):
                if not s._lock.acquire(blocking=False):
                    raise Glm5Error(Status.BUSY, f"session {i} is in use by another thread")
                held.append(s)
            if s._handle is None:
                raise Glm5Error(Status.INVALID_ARGUMENT, f"session {i} is closed")
            if s._model_handle != model_handle:
                raise Glm5Error(Status.INVALID_ARGUMENT, f"session {i} is not a session of this model")
            handles.append(s._handle)
        yield handles
    finally:
        for s in held:
            s._lock.release()


# ---------------------------------------------------------------------------------------------
# Routing record and replay
#
# The library reads replay arrays through bare pointers: it cannot see their sizes. Python
# therefore checks every shape exactly (InvalidArgumentError naming the expected one) and the
# element types (TypeError, as for token ids); the values (ascending keys within the position,
# distinct expert ids in range, finite weights) are the library's to check.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What a session of a model needs to know about it: the width of a logits row, the bound
    on its tokens, and the per-token shapes of the routing record."""

    vocab_size: int
    max_position_embeddings: int
    n_layers: int
    index_topk: int
    n_moe_layers: int
    n_experts_per_tok: int

    @classmethod
    def of(cls, info) -> "_Shape":
        """From a ModelInfo."""
        return cls(*(int(getattr(info, f.name)) for f in dataclasses.fields(cls)))

    def topk(self, n: int) -> Tuple[int, int, int]:
        return (n, self.n_layers, self.index_topk)

    def routes(self, n: int) -> Tuple[int, int, int]:
        return (n, self.n_moe_layers, self.n_experts_per_tok)


@dataclasses.dataclass(frozen=True)
class RecordInfo:
    """glm5_record_info: a session's routing record (:meth:`Model.session` with ``record=True``).

    ``recording`` is False, and every size 0, for a session that does not record. ``n_tokens``
    rows are recorded (the session's tokens: appends, sampling, forks and truncation follow
    them); per row, ``n_layers`` x ``index_topk`` selected keys and ``n_moe_layers`` x
    ``n_experts_per_tok`` routed experts with their weights, ``bytes_per_token`` = 4 L K + 8 M k.
    ``bytes`` is the memory the record holds now, ``max_bytes`` its bound (an append or sampling
    call that would pass it raises :class:`glm5.RecordFullError` and changes nothing).
    """

    recording: bool
    n_tokens: int
    n_layers: int
    index_topk: int
    n_moe_layers: int
    n_experts_per_tok: int
    bytes_per_token: int
    bytes: int
    max_bytes: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _replay_array(name: str, value, expected: Tuple[int, ...], layout: str) -> np.ndarray:
    """`value` as an ndarray of exactly the shape `expected` (InvalidArgumentError otherwise)."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        if isinstance(value, (str, bytes, Mapping)) or not (
            isinstance(value, Sequence) or hasattr(value, "__array__") or hasattr(value, "__array_interface__")
        ):
            raise TypeError(f"{name} must be a numpy array or a nested sequence of numbers, not {type(value).__name__}")
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):
            raise Glm5Error(
                Status.INVALID_ARGUMENT, f"{name} is not a rectangular array; expected shape {expected} = {layout}"
            ) from None
    if arr.shape != expected:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"{name} has shape {arr.shape}, expected {expected} = {layout}")
    return arr


def _replay_ints(name: str, value, expected: Tuple[int, ...], layout: str) -> np.ndarray:
    """An integer replay array (selected keys, expert ids) as C-contiguous int32."""
    arr = _replay_array(name, value, expected, layout)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, not {arr.dtype}")
    if arr.dtype != np.int32 and arr.size:
        bad = (arr < _INT32_MIN) | (arr > _INT32_MAX)
        if bad.any():
            where = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), arr.shape))
            raise Glm5Error(Status.INVALID_ARGUMENT, f"{name}{list(where)} is {int(arr[where])}, outside int32")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _replay_floats(name: str, value, expected: Tuple[int, ...], layout: str) -> np.ndarray:
    """A float replay array (expert weights) as C-contiguous float32."""
    arr = _replay_array(name, value, expected, layout)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype, not {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class _Replay:
    """A glm5_replay and the arrays it points into (referenced here until the call returns)."""

    def __init__(self, c: glm5_replay, arrays: List[np.ndarray]):
        self.c = c
        self.arrays = arrays

    def ref(self):
        return ctypes.byref(self.c)


def _replay_arg(n: int, shape: _Shape, replay_topk, replay_routes) -> Optional[_Replay]:
    """The replay of one call of n tokens, or None when nothing is replayed.

    ``replay_topk``: None or [n, n_layers, index_topk] integers. ``replay_routes``: None, an
    integer array of expert ids [n, n_moe_layers, n_experts_per_tok] (the router weighs them), or
    a tuple (ids, weights) with float weights of the same shape (weights None: as ids alone)."""
    if replay_topk is None and replay_routes is None:
        return None
    c = new_replay()
    keep: List[np.ndarray] = []
    if replay_topk is not None:
        topk = _replay_ints("replay_topk", replay_topk, shape.topk(n), "[tokens, n_layers, index_topk]")
        c.topk = _i32p(topk)
        keep.append(topk)
    if replay_routes is not None:
        layout = "[tokens, n_moe_layers, n_experts_per_tok]"
        if isinstance(replay_routes, tuple):
            if len(replay_routes) != 2:
                raise TypeError(
                    f"replay_routes must be an array of expert ids or a tuple (ids, weights), not a tuple of "
                    f"{len(replay_routes)}"
                )
            ids, weights = replay_routes
        else:
            ids, weights = replay_routes, None
        if ids is not None:
            ids = _replay_ints("replay_routes ids", ids, shape.routes(n), layout)
            c.expert_ids = _i32p(ids)
            keep.append(ids)
        if weights is not None:  # without ids the library refuses them, with its own message
            weights = _replay_floats("replay_routes weights", weights, shape.routes(n), layout)
            c.expert_weights = _f32p(weights)
            keep.append(weights)
    return _Replay(c, keep)


def _path_arg(name: str, path) -> bytes:
    """A file system path (str, bytes or os.PathLike) as the bytes the library opens."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str, bytes or os.PathLike path, not {type(path).__name__}")
    b = os.fsencode(path)
    if b"\0" in b:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"{name} {os.fsdecode(b)!r} contains a NUL character")
    return b


class Session(_Owned):
    """One token sequence and its caches (glm5_session); create it with :meth:`Model.session`.

    Append token ids (prefill for many, decode for one), read logits and log-probabilities,
    generate greedily, truncate back. Results do not depend on how a sequence is split into
    appends: they are bitwise the same.

    The session keeps the model's weights alive: it stays usable after ``Model.close()``. Free
    it with :meth:`close`, a ``with`` block, or by dropping the last reference.

    A session is meant for one thread at a time. A call made while another thread is inside a
    call on the same session (or a :meth:`Model.sample_batch` that includes it) raises
    :class:`glm5.BusyError` instead of waiting (as the C library does); :meth:`close` waits for a
    running call to finish. :meth:`cancel` is the exception: it is made to be called from another
    thread while :meth:`sample` runs.

    Every failure raises :class:`glm5.Glm5Error` (with ``.status``) and leaves the session
    exactly as it was.

    A session made with ``record=True`` records the routing decisions of every token it holds
    (:meth:`recorded_topk`, :meth:`recorded_routes`, :attr:`record_info`); the appends take
    ``replay_topk=`` / ``replay_routes=`` to use given decisions instead of computing them. A
    session can be saved to bytes or a file (:meth:`save`) and restored on a model of the same
    configuration (:meth:`Model.restore`).
    """

    _free_name = "glm5_session_free"

    def __init__(
        self,
        model_handle: int,
        shape: _Shape,
        max_tokens=None,
        record: bool = False,
        record_max_bytes: Optional[int] = None,
        mtp: bool = True,
    ):
        self._handle: Optional[int] = None  # first, so that __del__ works whatever happens below
        self._lock = threading.Lock()
        self._cancel_lock = threading.Lock()  # guards the handle for cancel(), which skips _lock
        requested = 0 if max_tokens is None else _count_arg("max_tokens", max_tokens, _UINT32_MAX)
        record = _flag_arg("record", record)
        params = new_session_params()
        params.max_tokens = requested
        if record_max_bytes is not None:
            bound = _count_arg("record_max_bytes", record_max_bytes, _UINT64_MAX)
            if not record:
                # The library would ignore it; a bound on a record that is not made is a mistake.
                raise Glm5Error(Status.INVALID_ARGUMENT, "record_max_bytes is given, but record is False")
            params.record_max_bytes = bound
        params.record = 1 if record else 0
        params.no_mtp = 0 if _flag_arg("mtp", mtp) else 1
        handle = glm5_session_p()
        check(LIB.glm5_session_new(model_handle, ctypes.byref(params), ctypes.byref(handle)))
        self._init(handle.value, model_handle, shape, requested or shape.max_position_embeddings)

    def _init(self, handle: int, model_handle: int, shape: _Shape, max_tokens: int) -> None:
        self._handle = handle
        #: The model's handle (sessions of one model may be batched together).
        self._model_handle = model_handle
        #: The model's sizes (logits rows, replay shapes).
        self._shape = shape
        #: Entries of the vocabulary (the width of a logits row).
        self.vocab_size = shape.vocab_size
        #: The most tokens the session may hold.
        self.max_tokens = int(max_tokens)

    @classmethod
    def _adopt(cls, handle: int, model_handle: int, shape: _Shape, max_tokens: int) -> "Session":
        """A Session object owning a handle the library just returned (a fork, a restore)."""
        s = cls.__new__(cls)
        s._handle = None
        s._lock = threading.Lock()
        s._cancel_lock = threading.Lock()
        s._init(handle, model_handle, shape, max_tokens)
        return s

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the session. Waits for a call running on another thread (cancel it first to make
        a long :meth:`sample` return early). Calling it again does nothing."""
        with self._lock, self._cancel_lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            LIB.glm5_session_free(handle)

    @contextlib.contextmanager
    def _use(self) -> Iterator[int]:
        """The live handle, held for one operation (which may be several C calls)."""
        if not self._lock.acquire(blocking=False):
            raise Glm5Error(Status.BUSY, "the session is in use by another thread")
        try:
            handle = self._handle
            if handle is None:
                raise Glm5Error(Status.INVALID_ARGUMENT, "session is closed")
            yield handle
        finally:
            self._lock.release()

    # -- appending --------------------------------------------------------------------------------

    def append(
        self, ids: TokenIds, logits: Union[str, Logits] = "last", *, replay_topk=None, replay_routes=None
    ) -> Optional[np.ndarray]:
        """Append token ids; return the logits asked for, as float32.

        ``logits="last"``: the next-token logits after the last id, shape ``[vocab_size]``;
        ``"all"``: one row per appended id, shape ``[len(ids), vocab_size]`` (row i predicts the
        token after ``ids[i]``); ``"none"``: returns None and skips the vocabulary projection.

        Replay (glm5_session_append_replay; Rollout Routing Replay): ``replay_topk``, int
        ``[len(ids), n_layers, index_topk]``, replaces every layer's DSA selection (the keys each
        query reads, ascending, within [0, position], padded with trailing -1);
        ``replay_routes`` replaces the MoE router's choice: an int array of expert ids
        ``[len(ids), n_moe_layers, n_experts_per_tok]`` (ascending, distinct; the router weighs
        them from its current logits), or a tuple ``(ids, weights)`` with float weights of the same
        shape. The layouts are those of :meth:`recorded_topk` / :meth:`recorded_routes` for the
        appended tokens; replaying what was recorded, on the same weights, reproduces the
        recorded logprobs bit for bit. Shapes and dtypes are checked here (InvalidArgumentError
        naming the expected shape; TypeError for a non-integer ids dtype), values by the library
        (InvalidArgumentError naming the token, layer and entry); on failure nothing changes. A
        recording session records what it replayed.
        """
        return self._append(ids, _logits_arg(logits), False, replay_topk, replay_routes)[0]

    def append_with_logprobs(
        self, ids: TokenIds, logits: Union[str, Logits] = "none", *, replay_topk=None, replay_routes=None
    ) -> Tuple[Optional[np.ndarray], np.ndarray]:
        """Append token ids; return ``(logits, logprobs)``.

        ``logits`` as in :meth:`append` (None for ``"none"``, the default). ``logprobs`` is float32
        ``[len(ids)]``: log p(ids[i] | everything before it in the session), temperature 1, the raw
        distribution; NaN for the very first token of the session. ``replay_topk`` and
        ``replay_routes`` as in :meth:`append`.
        """
        return self._append(ids, _logits_arg(logits), True, replay_topk, replay_routes)

    def _append(self, ids: TokenIds, mode: Logits, want_logprobs: bool, replay_topk=None, replay_routes=None):
        arr = as_token_array(ids)
        n = len(arr)
        replay = _replay_arg(n, self._shape, replay_topk, replay_routes)
        logprobs = np.empty(n, dtype=np.float32) if want_logprobs else None
        lp = _f32p(logprobs) if logprobs is not None else None
        with self._use() as handle:
            if replay is None:
                check(LIB.glm5_session_append(handle, _i32p(arr), n, int(mode), lp))
            else:
                check(LIB.glm5_session_append_replay(handle, _i32p(arr), n, int(mode), replay.ref(), 1.0, lp, None))
            out = None
            if mode == Logits.LAST:
                out = self._kept_logits(handle, 1).reshape(self.vocab_size)
            elif mode == Logits.ALL:
                out = self._kept_logits(handle, n)
        return out, logprobs

    def _kept_logits(self, handle: int, rows: Optional[int]) -> np.ndarray:
        """glm5_session_get_logits as [rows, vocab]; `rows` known in advance, or None to ask."""
        n_rows, n_floats = ctypes.c_size_t(), ctypes.c_size_t()
        if rows is None:
            status = LIB.glm5_session_get_logits(handle, None, 0, ctypes.byref(n_rows), ctypes.byref(n_floats))
            if status != Status.BUFFER_TOO_SMALL:
                check(status)
            rows = n_rows.value
        out = np.empty((rows, self.vocab_size), dtype=np.float32)
        check(LIB.glm5_session_get_logits(handle, _f32p(out), out.size, ctypes.byref(n_rows), ctypes.byref(n_floats)))
        if n_rows.value != rows or n_floats.value != out.size:
            raise Glm5Error(
                Status.INTERNAL, f"kept logits are {n_rows.value} rows / {n_floats.value} floats, expected {rows} rows"
            )
        return out

    def logits(self) -> np.ndarray:
        """The logits kept by the last append, float32 ``[rows, vocab_size]`` (rows is 0 after
        ``"none"``, :meth:`generate` or :meth:`truncate`)."""
        with self._use() as handle:
            return self._kept_logits(handle, None)

    # -- generation -------------------------------------------------------------------------------

    def generate(self, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """Greedily generate ``n`` tokens: each step appends the most likely next token (ties to the
        lower id). Returns ``(ids, logprobs)``: int32 ``[n]`` and their float32 log-probabilities
        ``[n]``. The session must hold at least one token; ContextFullError if ``n`` tokens do not
        fit (checked before anything is generated)."""
        n = _count_arg("n", n)
        if n > self.max_tokens:  # cannot fit whatever the session holds; avoid a huge allocation
            raise Glm5Error(
                Status.CONTEXT_FULL, f"generating {n} token(s) exceeds the session's maximum of {self.max_tokens}"
            )
        ids = np.empty(n, dtype=np.int32)
        logprobs = np.empty(n, dtype=np.float32)
        with self._use() as handle:
            check(LIB.glm5_session_generate(handle, n, _i32p(ids), _f32p(logprobs)))
        return ids, logprobs

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        min_p: float = 0.0,
        seed: int = 0,
        stop_token_ids: Optional[TokenIds] = None,
        ignore_eos: bool = False,
        top_logprobs: int = 0,
        speculative: int = 0,
    ) -> SampleResult:
        """Sample up to ``n`` new tokens, appending each (glm5_session_sample); a
        :class:`SampleResult`.

        ``temperature`` (0 = greedy, the tokens of :meth:`generate`), ``top_k`` (0 = off),
        ``top_p`` (1 = off), ``min_p`` (0 = off) shape the distribution; the token at position
        ``pos`` is drawn with Philox4x32-10 keyed by ``seed`` (0 ..< 2**64) at counter ``pos``, so
        it depends only on (seed, position, logits): not on batching, threads or how the session
        was built. Generation stops after ``n`` tokens, or after a token of ``stop_token_ids`` or
        of the model's :attr:`Model.eos_token_ids` (unless ``ignore_eos``); the stop token is
        kept. ``top_logprobs`` (0 ..= 64) alternatives per token are reported if > 0. The session
        must hold at least one token and have room for ``n`` more (ContextFullError, nothing
        generated). :meth:`cancel` from another thread stops it at the next token.
        ``speculative=k`` (1 ..= 8) drafts k tokens per step with the model's MTP layer and keeps
        those that equal what plain sampling draws: the same result bit for bit, faster when the
        drafts agree (InvalidArgumentError on a model without an MTP layer or a session made with
        ``mtp=False``).

        Types are checked here (TypeError); value ranges by the library (InvalidArgumentError
        naming the field). On any error the session is unchanged. Kept logits are cleared.
        """
        call = _SampleCall(
            n,
            self.max_tokens,
            dict(
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                min_p=min_p,
                seed=seed,
                stop_token_ids=stop_token_ids,
                ignore_eos=ignore_eos,
                top_logprobs=top_logprobs,
                speculative=speculative,
            ),
        )
        with self._use() as handle:
            check(LIB.glm5_session_sample(handle, ctypes.byref(call.params), ctypes.byref(call.out)))
        return call.result()

    def cancel(self) -> None:
        """Stop the :meth:`sample` (or :meth:`Model.sample_batch`) running on this session at the
        next token (glm5_session_cancel): it returns what it generated, finish_reason
        "cancelled". The one method that may be called from another thread during a call. A
        cancel made while no sampling call runs stops the next one before its first token."""
        with self._cancel_lock:
            handle = self._handle
            if handle is None:
                raise Glm5Error(Status.INVALID_ARGUMENT, "session is closed")
            check(LIB.glm5_session_cancel(handle))

    def fork(self) -> "Session":
        """A new Session holding the same tokens and caches (glm5_session_fork): it continues
        exactly as this one would (the same seed gives the same tokens). Same max_tokens; kept
        logits are not copied. Prefill once, fork per trajectory."""
        out = glm5_session_p()
        with self._use() as handle:
            check(LIB.glm5_session_fork(handle, ctypes.byref(out)))
            return Session._adopt(out.value, self._model_handle, self._shape, self.max_tokens)

    def append_scaled(
        self,
        ids: TokenIds,
        temperature: float,
        logits: Union[str, Logits] = "none",
        *,
        replay_topk=None,
        replay_routes=None,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Append token ids; return ``(logprobs, scaled_logprobs)``, float32 ``[len(ids)]`` each
        (glm5_session_append_scaled; glm5_session_append_replay with a replay).

        ``logprobs`` as :meth:`append_with_logprobs` (raw, temperature 1); ``scaled_logprobs`` the
        log-softmax of logits / ``temperature``, bitwise what :meth:`sample` reports for the same
        tokens (temperature 0 gives the raw values). NaN for the session's first token.
        ``logits`` says what to keep for :meth:`logits`. ``replay_topk`` and ``replay_routes`` as
        in :meth:`append`.
        """
        mode = _logits_arg(logits)
        t = _temperature_arg(temperature)
        arr = as_token_array(ids)
        n = len(arr)
        replay = _replay_arg(n, self._shape, replay_topk, replay_routes)
        raw = np.empty(n, dtype=np.float32)
        scaled = np.empty(n, dtype=np.float32)
        with self._use() as handle:
            if replay is None:
                check(LIB.glm5_session_append_scaled(handle, _i32p(arr), n, int(mode), t, _f32p(raw), _f32p(scaled)))
            else:
                check(
                    LIB.glm5_session_append_replay(
                        handle, _i32p(arr), n, int(mode), replay.ref(), t, _f32p(raw), _f32p(scaled)
                    )
                )
        return raw, scaled

    # -- routing record ---------------------------------------------------------------------------

    @property
    def record_info(self) -> RecordInfo:
        """glm5_session_get_record_info: the routing record's sizes (``recording`` False when the
        session was made without ``record=True``)."""
        with self._use() as handle:
            return self._record_info(handle)

    def _record_info(self, handle: int) -> RecordInfo:
        c = new_record_info()
        check(LIB.glm5_session_get_record_info(handle, ctypes.byref(c)))
        return RecordInfo(
            recording=bool(c.recording),
            **{f.name: int(getattr(c, f.name)) for f in dataclasses.fields(RecordInfo) if f.name != "recording"},
        )

    def _record_range(self, handle: int, first, count) -> Tuple[RecordInfo, int, int]:
        first = _count_arg("first", first, _SIZE_MAX)
        info = self._record_info(handle)
        n = max(info.n_tokens - first, 0) if count is None else _count_arg("count", count, _SIZE_MAX)
        return info, first, n

    @staticmethod
    def _needed(status: int, need: ctypes.c_size_t, expected: int, what: str) -> None:
        """The first call of a two-call pattern: checks the range (the library's message) and
        that the size it needs is the one the record info implies."""
        if status not in (Status.OK, Status.BUFFER_TOO_SMALL):
            check(status)
        if need.value != expected:
            raise Glm5Error(Status.INTERNAL, f"the library needs {need.value} entries of {what}, expected {expected}")

    def recorded_topk(self, first: int = 0, count: Optional[int] = None) -> np.ndarray:
        """The recorded DSA selections (glm5_session_get_recorded_topk) of tokens
        ``[first, first + count)`` (count None: to the end), int32 ``[count, n_layers,
        index_topk]``: the keys each layer's attention read for each token, ascending, padded with
        -1 (a token at position p < index_topk - 1 reads only p + 1 keys). The session must record
        (InvalidArgumentError otherwise, and for a range beyond the recorded tokens)."""
        with self._use() as handle:
            info, first, n = self._record_range(handle, first, count)
            need = ctypes.c_size_t()
            status = LIB.glm5_session_get_recorded_topk(handle, first, n, None, 0, ctypes.byref(need))
            self._needed(status, need, n * info.n_layers * info.index_topk, "top-k")
            out = np.empty((n, info.n_layers, info.index_topk), dtype=np.int32)
            check(LIB.glm5_session_get_recorded_topk(handle, first, n, _i32p(out), out.size, ctypes.byref(need)))
        return out

    def recorded_routes(self, first: int = 0, count: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The recorded MoE routes (glm5_session_get_recorded_routes) of tokens ``[first, first +
        count)`` (count None: to the end): ``(expert_ids, expert_weights)``, int32 and float32
        ``[count, n_moe_layers, n_experts_per_tok]``: each MoE layer's routed experts in layer
        order, ascending, and their combine weights (after normalisation and
        routed_scaling_factor). Errors as :meth:`recorded_topk`."""
        with self._use() as handle:
            info, first, n = self._record_range(handle, first, count)
            need = ctypes.c_size_t()
            status = LIB.glm5_session_get_recorded_routes(handle, first, n, None, None, 0, ctypes.byref(need))
            self._needed(status, need, n * info.n_moe_layers * info.n_experts_per_tok, "routes")
            ids = np.empty((n, info.n_moe_layers, info.n_experts_per_tok), dtype=np.int32)
            weights = np.empty(ids.shape, dtype=np.float32)
            check(
                LIB.glm5_session_get_recorded_routes(
                    handle, first, n, _i32p(ids), _f32p(weights), ids.size, ctypes.byref(need)
                )
            )
        return ids, weights

    def recompute(self) -> None:
        """Recompute the caches (and the record) from the session's tokens with the model's
        current weights, as a new session appending the same tokens would (glm5_session_recompute;
        after :meth:`Model.update_weights` and friends, a session keeps what the old weights
        computed until this is called). Clears the kept logits."""
        with self._use() as handle:
            check(LIB.glm5_session_recompute(handle))

    # -- saving -----------------------------------------------------------------------------------

    def save(self, path=None) -> Union[bytes, int]:
        """Save the session: tokens, caches, kept hidden rows, routing record, and the model's
        configuration fingerprint and weight version (glm5_session_save).

        ``save()`` returns the bytes; ``save(path)`` writes them to a file (created or replaced;
        glm5_session_save_file) and returns how many were written. :meth:`Model.restore` makes a
        new session from either, on this model or another of the same configuration; it
        continues bit for bit as this one would. Kept logits are not saved (as with :meth:`fork`).
        """
        size = ctypes.c_size_t()
        if path is not None:
            p = _path_arg("path", path)
            with self._use() as handle:
                check(LIB.glm5_session_save_file(handle, p, ctypes.byref(size)))
            return size.value
        data = ctypes.c_void_p()
        with self._use() as handle:
            check(LIB.glm5_session_save(handle, ctypes.byref(data), ctypes.byref(size)))
        try:
            return ctypes.string_at(data.value, size.value) if size.value else b""
        finally:
            LIB.glm5_free(data)

    # -- state ------------------------------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        """The number of tokens the session holds."""
        out = ctypes.c_size_t()
        with self._use() as handle:
            check(LIB.glm5_session_n_tokens(handle, ctypes.byref(out)))
        return out.value

    @property
    def tokens(self) -> np.ndarray:
        """The session's token ids, int32 ``[n_tokens]`` (a copy)."""
        with self._use() as handle:
            count = ctypes.c_size_t()
            check(LIB.glm5_session_n_tokens(handle, ctypes.byref(count)))
            out = np.empty(count.value, dtype=np.int32)
            check(LIB.glm5_session_get_tokens(handle, _i32p(out), out.size, ctypes.byref(count)))
            if count.value != out.size:
                raise Glm5Error(Status.INTERNAL, f"the session reported {count.value} tokens, then {out.size}")
        return out

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` tokens (``n`` <= n_tokens): later appends behave exactly as in
        a session that only ever held those. Clears the kept logits."""
        n = _count_arg("n", n)
        with self._use() as handle:
            check(LIB.glm5_session_truncate(handle, n))

    def __repr__(self) -> str:
        if self.closed:
            return "<glm5.Session closed>"
        try:
            return f"<glm5.Session {self.n_tokens}/{self.max_tokens} tokens>"
        except Glm5Error:
            return f"<glm5.Session max_tokens={self.max_tokens}>"
