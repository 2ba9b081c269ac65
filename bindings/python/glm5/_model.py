"""Models: loading a checkpoint folder and describing it."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import os
import sys
import threading
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ._errors import Glm5Error, Status, check
from ._owned import _Owned
from ._lib import (
    LIB,
    RESTORE_ANY_WEIGHT_VERSION,
    WEIGHT_VERSION_SIZE,
    c_float_p,
    c_int32_p,
    c_int64_p,
    glm5_model_info,
    glm5_model_p,
    glm5_sample_output_p,
    glm5_sampling_params_p,
    glm5_session_p,
    glm5_weight_update_p,
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
    _flag_arg,
    _logits_arg,
    _path_arg,
    _per_session,
    _replay_arg,
    _SampleCall,
    _sampling_keywords,
    _session_list,
    _Shape,
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


# ---------------------------------------------------------------------------------------------
# Tensors for weight updates: which glm5_dtype an array is
# ---------------------------------------------------------------------------------------------

# numpy dtypes that say their glm5_dtype by themselves. uint16 is missing on purpose: it is how
# BF16 data travels without ml_dtypes, so it needs dtype="bf16" (or "u16").
_NATURAL_DTYPES = {
    np.dtype(np.float32): DType.F32,
    np.dtype(np.float16): DType.F16,
    np.dtype(np.float64): DType.F64,
    np.dtype(np.int8): DType.I8,
    np.dtype(np.uint8): DType.U8,
    np.dtype(np.int16): DType.I16,
    np.dtype(np.int32): DType.I32,
    np.dtype(np.int64): DType.I64,
    np.dtype(np.uint32): DType.U32,
    np.dtype(np.uint64): DType.U64,
    np.dtype(np.bool_): DType.BOOL,
}
# Extension dtypes (ml_dtypes, as jax and torch exports use) by name.
_NAMED_DTYPES = {"bfloat16": DType.BF16, "float8_e4m3fn": DType.F8_E4M3, "float8_e5m2": DType.F8_E5M2}
# Dtypes numpy has no type for travel as unsigned integers of their size.
_BIT_CONTAINERS = {
    DType.BF16: np.dtype(np.uint16),
    DType.U16: np.dtype(np.uint16),
    DType.F8_E4M3: np.dtype(np.uint8),
    DType.F8_E5M2: np.dtype(np.uint8),
}
_DTYPE_ALIASES = {
    **{d.name.lower(): d for d in DType},
    **{np.dtype(t).name: d for t, d in _NATURAL_DTYPES.items()},
    **_NAMED_DTYPES,
    "uint16": DType.U16,
    "bool": DType.BOOL,
    "fp32": DType.F32,
    "fp16": DType.F16,
    "half": DType.F16,
}


def _dtype_spec(name: str, spec) -> DType:
    """An explicit dtype for tensor `name`: a glm5.DType, or a name such as "bf16", "BF16",
    "bfloat16", "f32", "float32" (case-insensitive)."""
    if isinstance(spec, DType):
        return spec
    if isinstance(spec, str):
        d = _DTYPE_ALIASES.get(spec.lower())
        if d is None:
            raise Glm5Error(
                Status.INVALID_ARGUMENT,
                f"dtype {spec!r} for tensor {name!r} is not a glm5 dtype ({', '.join(x.name for x in DType)})",
            )
        return d
    raise TypeError(f"dtype for tensor {name!r} must be a str or a glm5.DType, not {type(spec).__name__}")


def _natural_dtype(arr: np.ndarray) -> Optional[DType]:
    dt = arr.dtype
    if dt.byteorder in "<>":
        dt = dt.newbyteorder("=")
    d = _NATURAL_DTYPES.get(dt)
    if d is None and dt.name in _NAMED_DTYPES and dt.itemsize == (1 if dt.name.startswith("float8") else 2):
        d = _NAMED_DTYPES[dt.name]
    return d


def _tensor_arg(name, value, spec) -> Tuple[bytes, DType, np.ndarray]:
    """One tensor of a weight update: (name as bytes, its glm5_dtype, its data as a C-contiguous
    little-endian array). The dtype is the array's own (float32 F32, float16 F16, int32 I32, int64
    I64, uint8 U8, ...) unless `spec` names one; an explicit BF16 / F8 / U16 takes the unsigned
    integers of its size. Anything else, or a uint16 array without a dtype, is TypeError."""
    if not isinstance(name, str):
        raise TypeError(f"tensor names must be str, not {type(name).__name__}")
    try:
        b = name.encode("utf-8")
    except UnicodeEncodeError:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"tensor name {name!r} is not valid UTF-8") from None
    if b"\0" in b:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"tensor name {name!r} contains a NUL character")
    if isinstance(value, np.ndarray):
        arr = value
    elif hasattr(value, "__array__") or hasattr(value, "__array_interface__"):
        arr = np.asarray(value)
    else:
        raise TypeError(f"tensor {name!r} must be a numpy array, not {type(value).__name__}")
    natural = _natural_dtype(arr)
    if spec is None:
        if natural is None:
            if arr.dtype == np.uint16:
                raise TypeError(
                    f"tensor {name!r} is a uint16 array, which may hold BF16 or U16 data: pass dtype=\"bf16\" "
                    f"(or \"u16\")"
                )
            raise TypeError(f"tensor {name!r} has dtype {arr.dtype}, which is not a glm5 dtype")
        dtype = natural
    else:
        dtype = _dtype_spec(name, spec)
        dt = arr.dtype.newbyteorder("=") if arr.dtype.byteorder in "<>" else arr.dtype
        if dtype != natural and _BIT_CONTAINERS.get(dtype) != dt:
            container = _BIT_CONTAINERS.get(dtype)
            hint = f" (send {dtype.name} data as a {container} array)" if container is not None else ""
            raise TypeError(f"tensor {name!r} is a {arr.dtype} array, which cannot be sent as {dtype.name}{hint}")
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return b, dtype, np.ascontiguousarray(arr)


def _tensor_items(tensors) -> Iterable[Tuple[Any, Any]]:
    """The (name, array) pairs of a Mapping or of an iterable of pairs."""
    if isinstance(tensors, Mapping):
        return tensors.items()
    if isinstance(tensors, (str, bytes)) or not hasattr(tensors, "__iter__"):
        raise TypeError(
            f"tensors must be a dict of name -> array or an iterable of (name, array), not {type(tensors).__name__}"
        )

    def pairs():
        for i, item in enumerate(tensors):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(f"tensors item {i} is {type(item).__name__}, not a (name, array) pair")
            yield item[0], item[1]

    return pairs()


def _version_arg(version, allow_none: bool = False) -> Optional[bytes]:
    """A weight version (1 to 127 bytes of UTF-8, checked by the library) as NUL-free bytes."""
    if version is None and allow_none:
        return None
    if not isinstance(version, str):
        raise TypeError(f"version must be a str, not {type(version).__name__}")
    try:
        b = version.encode("utf-8")
    except UnicodeEncodeError:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"version {version!r} is not valid UTF-8") from None
    if b"\0" in b:
        raise Glm5Error(Status.INVALID_ARGUMENT, f"version {version!r} contains a NUL character")
    return b


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
    resident_weight_bytes: int  # memory the weights take once all are used (mapped + copied + updated)
    updated_weight_bytes: int  # of those, bytes of tensors weight updates replaced (owned memory)
    n_weight_updates: int  # updates applied since loading

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

    def session(
        self,
        max_tokens: Optional[int] = None,
        record: bool = False,
        record_max_bytes: Optional[int] = None,
        mtp: bool = True,
    ) -> Session:
        """A new empty :class:`Session` on this model (glm5_session_new).

        ``max_tokens``: the most tokens it may hold; None or 0 for the model's
        max_position_embeddings, which is also the upper bound (InvalidArgumentError above it).
        The session keeps the weights alive, so it may outlive this model's :meth:`close`.

        ``record=True``: the session records every token's DSA selections and MoE routes
        (:meth:`Session.recorded_topk`, :meth:`Session.recorded_routes`); what a sampled
        trajectory records equals what scoring it afterwards records, bit for bit.
        ``record_max_bytes`` bounds the record's memory (None or 0: 1 GiB; only with
        ``record=True``): an append or sampling call that would pass it raises
        :class:`glm5.RecordFullError` and changes nothing.

        ``mtp``: on a model with an MTP layer (:attr:`ModelInfo.has_mtp`) the session keeps its
        cache current, one more layer per token, so that sampling can speculate
        (``speculative=k``); ``mtp=False`` saves that layer and refuses speculation.
        """
        shape = _Shape.of(self.info)
        return Session(self._ptr(), shape, max_tokens, record, record_max_bytes, mtp)

    def score(
        self, ids: TokenIds, temperature: Optional[float] = None, *, replay_topk=None, replay_routes=None
    ) -> np.ndarray:
        """Log-probabilities of a whole sequence from an empty context (glm5_model_score).

        Returns float32 ``[len(ids)]``: ``log p(ids[i] | ids[:i])`` at temperature 1 (the raw
        distribution), NaN at index 0. Bitwise equal to the logprobs of appending the same ids to a
        new session in any split. Safe to call from many threads at once.

        With ``temperature=T`` (glm5_model_score_scaled): the log-softmax of logits / T instead,
        bitwise what :meth:`Session.sample` at temperature T reported for the same tokens (what
        an RL trainer recomputes); T = 0 gives the raw values.

        With ``replay_topk`` and/or ``replay_routes`` (glm5_model_score_replay; the trainer side
        of Rollout Routing Replay): the given DSA selections and MoE routes are used instead of
        computed, with the shapes and semantics of :meth:`Session.append`'s (``[len(ids), ...]``,
        the layouts of :meth:`Session.recorded_topk` / :meth:`Session.recorded_routes`).
        Replaying a rollout's record on the same weights reproduces its logprobs bit for bit.
        """
        arr = as_token_array(ids)
        n = len(arr)
        out = np.empty(n, dtype=np.float32)
        t = None if temperature is None else _temperature_arg(temperature)
        replay = None
        if replay_topk is not None or replay_routes is not None:
            replay = _replay_arg(n, _Shape.of(self.info), replay_topk, replay_routes)
        tokens, lp = arr.ctypes.data_as(c_int32_p), out.ctypes.data_as(c_float_p)
        if replay is not None:
            if t is None:
                check(LIB.glm5_model_score_replay(self._ptr(), tokens, n, replay.ref(), 1.0, lp, None))
            else:
                check(LIB.glm5_model_score_replay(self._ptr(), tokens, n, replay.ref(), t, None, lp))
        elif t is None:
            check(LIB.glm5_model_score(self._ptr(), tokens, n, lp))
        else:
            check(LIB.glm5_model_score_scaled(self._ptr(), tokens, n, t, None, lp))
        return out

    def mtp_draft_logits(self, ids: TokenIds) -> np.ndarray:
        """The MTP layer's first draft step over ``ids``, teacher-forced, from an empty context
        (glm5_model_mtp_draft_logits): float32 ``[len(ids) - 1, vocab_size]``, row i the logits
        of ``ids[i + 2]`` from the main model's final-normed hidden state at i and ``ids[i + 1]``.
        InvalidArgumentError on a model without an MTP layer or fewer than 2 ids."""
        arr = as_token_array(ids)
        n = len(arr)
        vocab = _Shape.of(self.info).vocab_size
        out = np.empty((max(n - 1, 0), vocab), dtype=np.float32)
        check(LIB.glm5_model_mtp_draft_logits(self._ptr(), arr.ctypes.data_as(c_int32_p), n,
                                              out.ctypes.data_as(c_float_p), out.size))
        return out

    # -- weight updates ---------------------------------------------------------------------------
    #
    # Every update is atomic (everything is read, checked and converted before the weights change;
    # a refused one changes nothing, version included) and carries a weight version (1 to 127
    # bytes of UTF-8) reported by weight_version and stamped on every SampleResult. A call in
    # flight finishes on the weights it started with. Sessions keep their caches (what the old
    # weights computed) and compute new tokens with the new weights; Session.recompute() rebuilds
    # them. Updated tensors live in owned memory in the format the model was loaded with (a float
    # tensor for an INT4 module is quantized as `glm5 quantize` does); the rest stays mapped.

    @property
    def weight_version(self) -> str:
        """The version of the weights in force (glm5_model_weight_version): "default" after
        loading, then the version of the last update."""
        buf = ctypes.create_string_buffer(WEIGHT_VERSION_SIZE)
        need = ctypes.c_size_t()
        check(LIB.glm5_model_weight_version(self._ptr(), buf, len(buf), ctypes.byref(need)))
        return buf.value.decode("utf-8", errors="replace")

    def update_weights(self, folder: Union[str, bytes, "os.PathLike[str]"], version: str) -> None:
        """Replace every weight with those of a Hugging Face folder of the same configuration, in
        any supported format (glm5_model_update_from_folder), as weight version ``version``.

        A folder whose tensors all have the loaded dtypes and shapes is adopted as it is
        (memory-mapped, bit for bit a fresh load of it: it must then stay unchanged on disk);
        otherwise each tensor is converted to the loaded format. IncompatibleError for another
        configuration (the message names the first differing key); the load errors (IoError,
        BadFormatError, UnsupportedError) for the folder. Thread-safe; on failure nothing changes.
        """
        check(LIB.glm5_model_update_from_folder(self._ptr(), _path_arg("folder", folder), _version_arg(version)))

    def update_weights_delta(
        self, folder: Union[str, bytes, "os.PathLike[str]"], version: Optional[str] = None
    ) -> None:
        """Apply a delta in the layout of slime's delta weight sync (glm5_model_update_from_delta):
        the ``weight_vNNNNNN/`` folder slime passes to update_weights_from_disk (rank*_flush*
        safetensors files and the DONE marker). The changed elements overwrite the loaded bytes
        exactly, so a delta must be in each tensor's loaded dtype. ``version`` None takes the
        delta's current_version. VersionMismatchError when the delta's prev_version is not
        :attr:`weight_version`; BadFormatError for a missing DONE, a corrupt file, a tensor the
        model does not hold so; UnsupportedError for an unknown encoding or a float delta for an
        INT4 module. Thread-safe; on failure nothing changes.
        """
        check(
            LIB.glm5_model_update_from_delta(
                self._ptr(), _path_arg("folder", folder), _version_arg(version, allow_none=True)
            )
        )

    def update_tensors(
        self,
        tensors: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]],
        version: str,
        dtype: Union[None, str, DType, Mapping[str, Union[str, DType]]] = None,
    ) -> None:
        """Update weights tensor by tensor as a trainer streams them (glm5_weight_update_begin,
        _add per tensor, _commit), as weight version ``version``.

        ``tensors``: a dict of checkpoint name -> numpy array, or an iterable of (name, array)
        pairs (each array is copied by the library when it is added, so a generator may drop it
        after). Each tensor is either one the model holds, in its dtype and shape (an INT4
        module's weight_packed / weight_scale / weight_zero_point included), or
        ``"<module>.weight"`` in F32, BF16 or F16 ``[out, in]`` for any Linear module (encoded in
        the module's loaded format: INT4 with its group size, FP8 with its blocks, or its float
        dtype), or another float tensor (norm, embedding) in another float dtype (converted).

        The dtype of each tensor is its array's (float32 F32, float16 F16, int32 I32, int64 I64,
        uint8 U8, ...; ml_dtypes' bfloat16 BF16) unless ``dtype`` names it: one name or
        :class:`DType` for every tensor, or a dict name -> dtype (names it lacks use the array's).
        BF16 without ml_dtypes is a uint16 array of the raw bits with ``dtype="bf16"``; a uint16
        array without a dtype, an array that cannot be the named dtype, or any other dtype is a
        TypeError.

        Atomic: the update is committed only once every tensor was added; any failure (a name
        the model does not have, a shape or dtype that cannot become the loaded tensor:
        InvalidArgumentError, BadFormatError) drops what was staged and changes nothing.
        """
        version_b = _version_arg(version)
        if dtype is not None and not isinstance(dtype, (str, DType, Mapping)):
            raise TypeError(
                f"dtype must be None, a str, a glm5.DType or a dict name -> dtype, not {type(dtype).__name__}"
            )
        per_name = dtype if isinstance(dtype, Mapping) else None
        items = _tensor_items(tensors)
        update = glm5_weight_update_p()
        check(LIB.glm5_weight_update_begin(self._ptr(), ctypes.byref(update)))
        try:
            seen = set()
            for name, value in items:
                spec = per_name.get(name) if per_name is not None else dtype
                name_b, dt, arr = _tensor_arg(name, value, spec)
                seen.add(name)
                shape = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
                check(
                    LIB.glm5_weight_update_add(
                        update, name_b, int(dt), ctypes.cast(shape, c_int64_p), arr.ndim,
                        ctypes.c_void_p(arr.ctypes.data), arr.nbytes,
                    )
                )
            if per_name is not None:
                unknown = [k for k in per_name if k not in seen]
                if unknown:
                    names = ", ".join(map(repr, unknown))
                    raise Glm5Error(Status.INVALID_ARGUMENT, f"dtype names tensor(s) that were not given: {names}")
            check(LIB.glm5_weight_update_commit(update, version_b))
        finally:
            LIB.glm5_weight_update_free(update)

    # -- saved sessions ---------------------------------------------------------------------------

    def restore(self, source, allow_other_version: bool = False) -> Session:
        """A new :class:`Session` from what :meth:`Session.save` wrote (glm5_session_restore):
        ``source`` is the bytes (any bytes-like object: bytes, bytearray, memoryview, mmap) or
        a path (str or os.PathLike; glm5_session_restore_file).

        The session continues bit for bit as the saved one would (its record included). Refused:
        a truncated or corrupt file (BadFormatError), a future format version (UnsupportedError),
        another model configuration (IncompatibleError), a file saved under another weight
        version (VersionMismatchError, unless ``allow_other_version``: then the caches are what
        the old weights computed, as after an update; :meth:`Session.recompute` rebuilds them),
        an unreadable file (IoError).

        The restored session's ``max_tokens`` is the saved one (glm5_session_max_tokens).
        """
        flags = RESTORE_ANY_WEIGHT_VERSION if _flag_arg("allow_other_version", allow_other_version) else 0
        shape = _Shape.of(self.info)
        out = glm5_session_p()
        handle = self._ptr()
        if isinstance(source, (str, os.PathLike)):
            check(LIB.glm5_session_restore_file(handle, _path_arg("source", source), flags, ctypes.byref(out)))
        else:
            try:
                view = memoryview(source)
            except TypeError:
                raise TypeError(
                    f"source must be bytes-like (saved bytes) or a str / os.PathLike path, not {type(source).__name__}"
                ) from None
            if not view.c_contiguous:
                view = memoryview(view.tobytes())
            data = np.frombuffer(view.cast("B"), dtype=np.uint8)  # no copy, read-only buffers too
            ptr = ctypes.c_void_p(data.ctypes.data)
            check(LIB.glm5_session_restore(handle, ptr, data.size, flags, ctypes.byref(out)))
        restored = Session._adopt(out.value, handle, shape, shape.max_position_embeddings)
        limit = ctypes.c_size_t()
        check(LIB.glm5_session_max_tokens(out.value, ctypes.byref(limit)))
        restored.max_tokens = limit.value
        return restored

    @property
    def tokenizer(self):
        """The folder's tokenizer (glm5_model_tokenizer) as a :class:`Tokenizer`, or None when the
        folder has no tokenizer.json. Loaded at the first use; each access returns a new handle on
        the same tokenizer."""
        from ._tokenizer import Tokenizer
        from ._lib import glm5_tokenizer_p

        handle = glm5_tokenizer_p()
        check(LIB.glm5_model_tokenizer(self._ptr(), ctypes.byref(handle)))
        if handle.value is None:
            return None
        return Tokenizer._from_handle(handle.value, self.path)

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
