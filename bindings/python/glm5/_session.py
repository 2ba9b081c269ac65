"""Sessions: a token sequence and its caches (glm5_session), and token-id arrays."""

from __future__ import annotations

import contextlib
import ctypes
import enum
import operator
import threading
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import Glm5Error, Status, check
from ._owned import _Owned
from ._lib import LIB, c_float_p, c_int32_p, glm5_session_p, new_session_params

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UINT32_MAX = 2**32 - 1

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


class Session(_Owned):
    """One token sequence and its caches (glm5_session); create it with :meth:`Model.session`.

    Append token ids (prefill for many, decode for one), read logits and log-probabilities,
    generate greedily, truncate back. Results do not depend on how a sequence is split into
    appends: they are bitwise the same.

    The session keeps the model's weights alive: it stays usable after ``Model.close()``. Free
    it with :meth:`close`, a ``with`` block, or by dropping the last reference.

    A session is meant for one thread at a time. A call made while another thread is inside a
    call on the same session raises :class:`glm5.BusyError` instead of waiting (as the C library
    does); :meth:`close` waits for a running call to finish.

    Every failure raises :class:`glm5.Glm5Error` (with ``.status``) and leaves the session
    exactly as it was.
    """

    _free_name = "glm5_session_free"

    def __init__(self, model_handle: int, vocab_size: int, max_position_embeddings: int, max_tokens=None):
        self._handle: Optional[int] = None  # first, so that __del__ works whatever happens below
        self._lock = threading.Lock()
        limit = _UINT32_MAX
        requested = 0 if max_tokens is None else _count_arg("max_tokens", max_tokens, limit)
        params = new_session_params()
        params.max_tokens = requested
        handle = glm5_session_p()
        check(LIB.glm5_session_new(model_handle, ctypes.byref(params), ctypes.byref(handle)))
        self._handle = handle.value
        #: Entries of the vocabulary (the width of a logits row).
        self.vocab_size = int(vocab_size)
        #: The most tokens the session may hold.
        self.max_tokens = requested or int(max_position_embeddings)

    # -- lifetime ---------------------------------------------------------------------------------

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

    def append(self, ids: TokenIds, logits: Union[str, Logits] = "last") -> Optional[np.ndarray]:
        """Append token ids; return the logits asked for, as float32.

        ``logits="last"``: the next-token logits after the last id, shape ``[vocab_size]``;
        ``"all"``: one row per appended id, shape ``[len(ids), vocab_size]`` (row i predicts the
        token after ``ids[i]``); ``"none"``: returns None and skips the vocabulary projection.
        """
        return self._append(ids, _logits_arg(logits), False)[0]

    def append_with_logprobs(
        self, ids: TokenIds, logits: Union[str, Logits] = "none"
    ) -> Tuple[Optional[np.ndarray], np.ndarray]:
        """Append token ids; return ``(logits, logprobs)``.

        ``logits`` as in :meth:`append` (None for ``"none"``, the default). ``logprobs`` is float32
        ``[len(ids)]``: log p(ids[i] | everything before it in the session), temperature 1, the raw
        distribution; NaN for the very first token of the session.
        """
        return self._append(ids, _logits_arg(logits), True)

    def _append(self, ids: TokenIds, mode: Logits, want_logprobs: bool):
        arr = as_token_array(ids)
        n = len(arr)
        logprobs = np.empty(n, dtype=np.float32) if want_logprobs else None
        with self._use() as handle:
            check(
                LIB.glm5_session_append(
                    handle, _i32p(arr), n, int(mode), _f32p(logprobs) if logprobs is not None else None
                )
            )
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
