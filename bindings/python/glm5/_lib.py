"""Finding and loading libglm5, and the ctypes mirror of include/glm5.h.

Everything C lives here: the struct layouts, and restype/argtypes of every function. The rest of
the package calls ``LIB.glm5_*`` and never declares anything itself. When the header grows, add
its structs below and its functions to ``_FUNCTIONS``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

#: The GLM5_ABI_VERSION of the header this binding mirrors.
ABI_VERSION = 1

_LIB_NAME = "libglm5.dylib" if sys.platform == "darwin" else "libglm5.so"
_PACKAGE_DIR = Path(__file__).resolve().parent
# bindings/python/glm5/_lib.py -> the repository root, in a source checkout.
_REPO_DIR = _PACKAGE_DIR.parents[2]


# ---------------------------------------------------------------------------------------------
# Structs (layouts exactly as in glm5.h; sizes are checked below)
# ---------------------------------------------------------------------------------------------


class glm5_model_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_threads", ctypes.c_int32),
    ]


class glm5_model_info(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("vocab_size", ctypes.c_uint32),
        ("hidden_size", ctypes.c_uint32),
        ("n_layers", ctypes.c_uint32),
        ("n_dense_layers", ctypes.c_uint32),
        ("n_moe_layers", ctypes.c_uint32),
        ("n_heads", ctypes.c_uint32),
        ("q_lora_rank", ctypes.c_uint32),
        ("kv_lora_rank", ctypes.c_uint32),
        ("qk_nope_head_dim", ctypes.c_uint32),
        ("qk_rope_head_dim", ctypes.c_uint32),
        ("v_head_dim", ctypes.c_uint32),
        ("n_routed_experts", ctypes.c_uint32),
        ("n_experts_per_tok", ctypes.c_uint32),
        ("n_shared_experts", ctypes.c_uint32),
        ("index_n_heads", ctypes.c_uint32),
        ("index_head_dim", ctypes.c_uint32),
        ("index_topk", ctypes.c_uint32),
        ("max_position_embeddings", ctypes.c_uint32),
        ("has_mtp", ctypes.c_uint32),
        ("n_mtp_layers", ctypes.c_uint32),
        ("weight_dtypes", ctypes.c_uint32),
        ("n_parameters", ctypes.c_uint64),
        ("weight_file_bytes", ctypes.c_uint64),
        ("weight_formats", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("resident_weight_bytes", ctypes.c_uint64),
        # --- appended in 0.2 ---
        ("updated_weight_bytes", ctypes.c_uint64),
        ("n_weight_updates", ctypes.c_uint64),
    ]


class glm5_session_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("max_tokens", ctypes.c_uint32),
        # --- appended in 0.2 ---
        ("record", ctypes.c_uint32),
        ("no_mtp", ctypes.c_uint32),  # reserved0 before 0.4
        ("record_max_bytes", ctypes.c_uint64),
    ]


class glm5_record_info(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("recording", ctypes.c_uint32),
        ("n_tokens", ctypes.c_uint64),
        ("n_layers", ctypes.c_uint32),
        ("index_topk", ctypes.c_uint32),
        ("n_moe_layers", ctypes.c_uint32),
        ("n_experts_per_tok", ctypes.c_uint32),
        ("bytes_per_token", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("max_bytes", ctypes.c_uint64),
    ]


class glm5_replay(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("topk", ctypes.POINTER(ctypes.c_int32)),
        ("expert_ids", ctypes.POINTER(ctypes.c_int32)),
        ("expert_weights", ctypes.POINTER(ctypes.c_float)),
    ]


#: GLM5_MAX_TOP_LOGPROBS: the most alternatives a sampling call can report per token.
MAX_TOP_LOGPROBS = 64

#: GLM5_MAX_SPECULATIVE: the most tokens the MTP layer drafts per step.
MAX_SPECULATIVE = 8

#: GLM5_WEIGHT_VERSION_SIZE: bytes of a weight version with its NUL (versions are 1 to 127 bytes).
WEIGHT_VERSION_SIZE = 128

#: GLM5_RESTORE_ANY_WEIGHT_VERSION: a glm5_session_restore flag.
RESTORE_ANY_WEIGHT_VERSION = 1


class glm5_sampling_params(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("max_new_tokens", ctypes.c_uint32),
        ("seed", ctypes.c_uint64),
        ("stop_token_ids", ctypes.POINTER(ctypes.c_int32)),
        ("n_stop_token_ids", ctypes.c_size_t),
        ("ignore_eos", ctypes.c_int32),
        ("n_top_logprobs", ctypes.c_uint32),
        # --- appended in 0.4 ---
        ("speculative", ctypes.c_uint32),
    ]


class glm5_sample_output(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("finish_reason", ctypes.c_int32),
        ("capacity", ctypes.c_size_t),
        ("tokens", ctypes.POINTER(ctypes.c_int32)),
        ("logprobs", ctypes.POINTER(ctypes.c_float)),
        ("scaled_logprobs", ctypes.POINTER(ctypes.c_float)),
        ("processed_logprobs", ctypes.POINTER(ctypes.c_float)),
        ("top_ids", ctypes.POINTER(ctypes.c_int32)),
        ("top_logprobs", ctypes.POINTER(ctypes.c_float)),
        ("n_tokens", ctypes.c_size_t),
        ("stop_token_id", ctypes.c_int32),
        ("status", ctypes.c_int32),
        # --- appended in 0.2 ---
        ("weight_version", ctypes.c_char * WEIGHT_VERSION_SIZE),
        # --- appended in 0.4 ---
        ("accepted", ctypes.POINTER(ctypes.c_int32)),
        ("n_steps", ctypes.c_size_t),
    ]


class glm5_tokenizer_info(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("n_ids", ctypes.c_uint32),
        ("n_vocab", ctypes.c_uint32),
        ("n_added", ctypes.c_uint32),
        ("eos_id", ctypes.c_int32),
        ("bos_id", ctypes.c_int32),
        ("pad_id", ctypes.c_int32),
        ("unk_id", ctypes.c_int32),
        ("byte_level", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
    ]


#: glm5_tokenize / glm5_detokenize flags.
TOKENIZE_PARSE_SPECIAL = 1
DETOKENIZE_SKIP_SPECIAL = 1

assert ctypes.sizeof(glm5_tokenizer_info) == 40
assert ctypes.sizeof(glm5_model_params) == 8
assert ctypes.sizeof(glm5_model_info) == 136
assert glm5_model_info.resident_weight_bytes.offset == 112 and glm5_model_info.n_weight_updates.offset == 128
assert ctypes.sizeof(glm5_session_params) == 24 and glm5_session_params.record_max_bytes.offset == 16
assert ctypes.sizeof(glm5_record_info) == 56
assert glm5_record_info.n_layers.offset == 16 and glm5_record_info.bytes_per_token.offset == 32
assert glm5_record_info.max_bytes.offset == 48
if ctypes.sizeof(ctypes.c_void_p) == 8:  # the structs with pointers, as a 64-bit C compiler lays them out
    assert ctypes.sizeof(glm5_sampling_params) == 64 and glm5_sampling_params.speculative.offset == 56
    assert glm5_sampling_params.seed.offset == 24 and glm5_sampling_params.n_top_logprobs.offset == 52
    assert ctypes.sizeof(glm5_sample_output) == 224 and glm5_sample_output.accepted.offset == 208
    assert glm5_sample_output.capacity.offset == 8 and glm5_sample_output.n_tokens.offset == 64
    assert glm5_sample_output.status.offset == 76 and glm5_sample_output.weight_version.offset == 80
    assert ctypes.sizeof(glm5_replay) == 32
    assert glm5_replay.topk.offset == 8 and glm5_replay.expert_weights.offset == 24


# The header's glm5_*_init functions are static inline (not exported by the library): they set
# struct_size to the sizeof of the header the host was compiled with. This binding does the same
# for its own layouts: struct_size = this binding's sizeof tells the library which version of the
# struct it gets.


def new_model_params() -> glm5_model_params:
    """glm5_model_params_init on this binding's layout: defaults, struct_size = our sizeof."""
    return glm5_model_params(struct_size=ctypes.sizeof(glm5_model_params), n_threads=0)


def new_model_info() -> glm5_model_info:
    """glm5_model_info_init on this binding's layout: zeros, struct_size = our sizeof."""
    return glm5_model_info(struct_size=ctypes.sizeof(glm5_model_info))


def new_tokenizer_info() -> glm5_tokenizer_info:
    """glm5_tokenizer_info_init on this binding's layout: zeros, struct_size = our sizeof."""
    return glm5_tokenizer_info(struct_size=ctypes.sizeof(glm5_tokenizer_info))


def new_session_params() -> glm5_session_params:
    """glm5_session_params_init on this binding's layout: defaults, struct_size = our sizeof."""
    return glm5_session_params(
        struct_size=ctypes.sizeof(glm5_session_params), max_tokens=0, record=0, record_max_bytes=0
    )


def new_record_info() -> glm5_record_info:
    """glm5_record_info_init on this binding's layout: zeros, struct_size = our sizeof."""
    return glm5_record_info(struct_size=ctypes.sizeof(glm5_record_info))


def new_replay() -> glm5_replay:
    """glm5_replay_init on this binding's layout: NULL arrays, struct_size = our sizeof."""
    return glm5_replay(struct_size=ctypes.sizeof(glm5_replay))


def new_sampling_params() -> glm5_sampling_params:
    """glm5_sampling_params_init on this binding's layout: temperature 1, top_p 1, 128 tokens,
    everything else 0 (no top-k, no min-p, seed 0, no stop ids)."""
    return glm5_sampling_params(
        struct_size=ctypes.sizeof(glm5_sampling_params), temperature=1.0, top_p=1.0, max_new_tokens=128
    )


def new_sample_output() -> glm5_sample_output:
    """glm5_sample_output_init on this binding's layout: zeros, stop_token_id -1."""
    return glm5_sample_output(struct_size=ctypes.sizeof(glm5_sample_output), stop_token_id=-1)


# Opaque handles are plain pointers on this side.
glm5_model_p = ctypes.c_void_p
glm5_session_p = ctypes.c_void_p
glm5_weight_update_p = ctypes.c_void_p
glm5_tokenizer_p = ctypes.c_void_p
glm5_detokenizer_p = ctypes.c_void_p
# C enums (glm5_status, glm5_dtype, glm5_logits) are int-sized.
c_status = ctypes.c_int
c_dtype = ctypes.c_int
c_logits = ctypes.c_int
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_char_buf = ctypes.POINTER(ctypes.c_char)  # a caller buffer the library writes a string into
c_int64_p = ctypes.POINTER(ctypes.c_int64)
glm5_replay_p = ctypes.POINTER(glm5_replay)
glm5_sampling_params_p = ctypes.POINTER(glm5_sampling_params)
glm5_sample_output_p = ctypes.POINTER(glm5_sample_output)

# ---------------------------------------------------------------------------------------------
# Functions: name -> (restype, argtypes)
# ---------------------------------------------------------------------------------------------

_FUNCTIONS = {
    # Versions
    "glm5_abi_version": (ctypes.c_uint32, []),
    "glm5_version_number": (ctypes.c_uint32, []),
    "glm5_version_string": (ctypes.c_char_p, []),
    # Status codes and errors
    "glm5_status_string": (ctypes.c_char_p, [c_status]),
    "glm5_last_error": (ctypes.c_char_p, []),
    # Weight data types
    "glm5_dtype_name": (ctypes.c_char_p, [c_dtype]),
    # Models (glm5_model_params_init and glm5_model_info_init are inline in the header)
    "glm5_model_load": (
        c_status,
        [ctypes.c_char_p, ctypes.POINTER(glm5_model_params), ctypes.POINTER(glm5_model_p)],
    ),
    "glm5_model_free": (None, [glm5_model_p]),
    "glm5_model_get_info": (c_status, [glm5_model_p, ctypes.POINTER(glm5_model_info)]),
    "glm5_model_score": (c_status, [glm5_model_p, c_int32_p, ctypes.c_size_t, c_float_p]),
    "glm5_model_mtp_draft_logits": (c_status, [glm5_model_p, c_int32_p, ctypes.c_size_t, c_float_p, ctypes.c_size_t]),
    # Sessions (glm5_session_params_init is inline in the header)
    "glm5_session_new": (
        c_status,
        [glm5_model_p, ctypes.POINTER(glm5_session_params), ctypes.POINTER(glm5_session_p)],
    ),
    "glm5_session_free": (None, [glm5_session_p]),
    "glm5_session_append": (c_status, [glm5_session_p, c_int32_p, ctypes.c_size_t, c_logits, c_float_p]),
    "glm5_session_get_logits": (c_status, [glm5_session_p, c_float_p, ctypes.c_size_t, c_size_p, c_size_p]),
    "glm5_session_generate": (c_status, [glm5_session_p, ctypes.c_size_t, c_int32_p, c_float_p]),
    "glm5_session_n_tokens": (c_status, [glm5_session_p, c_size_p]),
    "glm5_session_max_tokens": (c_status, [glm5_session_p, c_size_p]),
    "glm5_session_get_tokens": (c_status, [glm5_session_p, c_int32_p, ctypes.c_size_t, c_size_p]),
    "glm5_session_truncate": (c_status, [glm5_session_p, ctypes.c_size_t]),
    "glm5_session_append_scaled": (
        c_status,
        [glm5_session_p, c_int32_p, ctypes.c_size_t, c_logits, ctypes.c_float, c_float_p, c_float_p],
    ),
    "glm5_session_fork": (c_status, [glm5_session_p, ctypes.POINTER(glm5_session_p)]),
    "glm5_session_cancel": (c_status, [glm5_session_p]),
    # Sampling (glm5_sampling_params_init and glm5_sample_output_init are inline in the header)
    "glm5_session_sample": (c_status, [glm5_session_p, glm5_sampling_params_p, glm5_sample_output_p]),
    "glm5_sample_batch": (
        c_status,
        [
            ctypes.POINTER(glm5_session_p),
            ctypes.c_size_t,
            ctypes.POINTER(glm5_sampling_params_p),
            ctypes.POINTER(glm5_sample_output_p),
        ],
    ),
    "glm5_append_batch": (
        c_status,
        [ctypes.POINTER(glm5_session_p), ctypes.c_size_t, ctypes.POINTER(c_int32_p), c_size_p, c_logits,
         ctypes.POINTER(c_float_p)],
    ),
    "glm5_model_score_scaled": (
        c_status,
        [glm5_model_p, c_int32_p, ctypes.c_size_t, ctypes.c_float, c_float_p, c_float_p],
    ),
    "glm5_model_eos_token_ids": (c_status, [glm5_model_p, c_int32_p, ctypes.c_size_t, c_size_p]),
    # Routing record and replay (glm5_record_info_init and glm5_replay_init are inline)
    "glm5_session_get_record_info": (c_status, [glm5_session_p, ctypes.POINTER(glm5_record_info)]),
    "glm5_session_get_recorded_topk": (
        c_status,
        [glm5_session_p, ctypes.c_size_t, ctypes.c_size_t, c_int32_p, ctypes.c_size_t, c_size_p],
    ),
    "glm5_session_get_recorded_routes": (
        c_status,
        [glm5_session_p, ctypes.c_size_t, ctypes.c_size_t, c_int32_p, c_float_p, ctypes.c_size_t, c_size_p],
    ),
    "glm5_session_append_replay": (
        c_status,
        [glm5_session_p, c_int32_p, ctypes.c_size_t, c_logits, glm5_replay_p, ctypes.c_float, c_float_p, c_float_p],
    ),
    "glm5_model_score_replay": (
        c_status,
        [glm5_model_p, c_int32_p, ctypes.c_size_t, glm5_replay_p, ctypes.c_float, c_float_p, c_float_p],
    ),
    "glm5_session_recompute": (c_status, [glm5_session_p]),
    # Weight updates
    "glm5_model_weight_version": (c_status, [glm5_model_p, c_char_buf, ctypes.c_size_t, c_size_p]),
    "glm5_model_update_from_folder": (c_status, [glm5_model_p, ctypes.c_char_p, ctypes.c_char_p]),
    "glm5_model_update_from_delta": (c_status, [glm5_model_p, ctypes.c_char_p, ctypes.c_char_p]),
    "glm5_weight_update_begin": (c_status, [glm5_model_p, ctypes.POINTER(glm5_weight_update_p)]),
    "glm5_weight_update_add": (
        c_status,
        [glm5_weight_update_p, ctypes.c_char_p, c_dtype, c_int64_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t],
    ),
    "glm5_weight_update_commit": (c_status, [glm5_weight_update_p, ctypes.c_char_p]),
    "glm5_weight_update_free": (None, [glm5_weight_update_p]),
    # Saving sessions
    "glm5_session_save": (c_status, [glm5_session_p, ctypes.POINTER(ctypes.c_void_p), c_size_p]),
    "glm5_session_save_file": (c_status, [glm5_session_p, ctypes.c_char_p, c_size_p]),
    "glm5_session_restore": (
        c_status,
        [glm5_model_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.POINTER(glm5_session_p)],
    ),
    "glm5_session_restore_file": (
        c_status,
        [glm5_model_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.POINTER(glm5_session_p)],
    ),
    "glm5_free": (None, [ctypes.c_void_p]),
    # Tokenizer (0.3; glm5_tokenizer_info_init is inline in the header)
    "glm5_tokenizer_load": (c_status, [ctypes.c_char_p, ctypes.POINTER(glm5_tokenizer_p)]),
    "glm5_model_tokenizer": (c_status, [glm5_model_p, ctypes.POINTER(glm5_tokenizer_p)]),
    "glm5_tokenizer_free": (None, [glm5_tokenizer_p]),
    "glm5_tokenizer_get_info": (c_status, [glm5_tokenizer_p, ctypes.POINTER(glm5_tokenizer_info)]),
    "glm5_tokenize": (
        c_status,
        [glm5_tokenizer_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32, c_int32_p, ctypes.c_size_t, c_size_p],
    ),
    "glm5_detokenize": (
        c_status,
        [glm5_tokenizer_p, c_int32_p, ctypes.c_size_t, ctypes.c_uint32, c_char_buf, ctypes.c_size_t, c_size_p],
    ),
    "glm5_token_to_piece": (c_status, [glm5_tokenizer_p, ctypes.c_int32, c_char_buf, ctypes.c_size_t, c_size_p]),
    "glm5_tokenizer_token_text": (
        c_status,
        [glm5_tokenizer_p, ctypes.c_int32, c_char_buf, ctypes.c_size_t, c_size_p, c_int32_p],
    ),
    "glm5_tokenizer_token_id": (c_status, [glm5_tokenizer_p, ctypes.c_char_p, ctypes.c_size_t, c_int32_p]),
    "glm5_detokenizer_new": (c_status, [glm5_tokenizer_p, ctypes.c_uint32, ctypes.POINTER(glm5_detokenizer_p)]),
    "glm5_detokenizer_push": (
        c_status,
        [glm5_detokenizer_p, c_int32_p, ctypes.c_size_t, c_char_buf, ctypes.c_size_t, c_size_p],
    ),
    "glm5_detokenizer_finish": (c_status, [glm5_detokenizer_p, c_char_buf, ctypes.c_size_t, c_size_p]),
    "glm5_detokenizer_free": (None, [glm5_detokenizer_p]),
}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _in_source_checkout() -> bool:
    """True when this package is bindings/python/glm5 of a glm5 checkout (not an installed copy)."""
    return (
        _PACKAGE_DIR.parent.name == "python"
        and _PACKAGE_DIR.parents[1].name == "bindings"
        and (_REPO_DIR / "include" / "glm5.h").is_file()
    )


def _pkg_config_libdir() -> Optional[str]:
    """`pkg-config --variable=libdir glm5` (PKG_CONFIG names the program), or None."""
    try:
        p = subprocess.run(
            [os.environ.get("PKG_CONFIG") or "pkg-config", "--variable=libdir", "glm5"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = p.stdout.strip()
    return libdir if p.returncode == 0 and libdir else None


def _system_names() -> List[str]:
    """The file names an installed library has: the soname of this ABI, then the dev symlink."""
    if sys.platform == "darwin":
        return [f"libglm5.{ABI_VERSION}.dylib", _LIB_NAME]
    return [f"{_LIB_NAME}.{ABI_VERSION}", _LIB_NAME]


def _candidates(env: Optional[str]) -> Iterator[Tuple[str, str]]:
    if env:
        p = Path(env)
        yield ("GLM5_LIBRARY", str(p / _LIB_NAME) if p.is_dir() else str(p))
        return  # an explicit choice is never silently replaced by another library
    yield ("next to the package", str(_PACKAGE_DIR / _LIB_NAME))
    if _in_source_checkout():
        yield ("repository build", str(_REPO_DIR / ".build" / "release" / _LIB_NAME))
    # Installed (`make install`): the dynamic loader's own search (LD_LIBRARY_PATH, ldconfig's
    # cache, the default folders), then pkg-config's libdir, then the usual prefixes by path
    # (a fresh /usr/local install that ldconfig has not seen yet).
    found = ctypes.util.find_library("glm5")
    for name in ([found] if found else []) + _system_names():
        yield ("system loader", name)
    libdir = _pkg_config_libdir()
    if libdir:
        for name in _system_names():
            yield ("pkg-config libdir", os.path.join(libdir, name))
    else:
        yield ("pkg-config libdir", "")  # nothing to try: said so in load_library's message
    for prefix_lib in ("/usr/local/lib", "/usr/lib"):
        for name in _system_names():
            yield ("standard prefix", os.path.join(prefix_lib, name))


def candidates(env: Optional[str] = None) -> List[Tuple[str, str]]:
    """The places to try, in order, as (description, path-or-name), without repeats.

    GLM5_LIBRARY alone when set; else next to the package, this checkout's .build/release (only
    in a source checkout), the system loader (ctypes.util.find_library, then the soname),
    `pkg-config --variable=libdir glm5`, and /usr/local/lib, /usr/lib."""
    out: List[Tuple[str, str]] = []
    for c in _candidates(env):
        if c[1] and all(c[1] != seen for _, seen in out):
            out.append(c)
    return out


def _loaded_file(lib: ctypes.CDLL, fallback: str) -> str:
    """The absolute path of the file the loader opened for lib (dladdr), or fallback."""

    class _DlInfo(ctypes.Structure):
        _fields_ = [
            ("dli_fname", ctypes.c_char_p),
            ("dli_fbase", ctypes.c_void_p),
            ("dli_sname", ctypes.c_char_p),
            ("dli_saddr", ctypes.c_void_p),
        ]

    for owner in (None, "libdl.so.2"):
        try:
            dladdr = ctypes.CDLL(owner).dladdr
        except (OSError, AttributeError):
            continue
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        try:
            address = ctypes.cast(lib.glm5_abi_version, ctypes.c_void_p)
        except AttributeError:
            return fallback
        if dladdr(address, ctypes.byref(info)) and info.dli_fname:
            return os.path.realpath(os.fsdecode(info.dli_fname))
    return fallback


def load_library(env: Optional[str] = None) -> Tuple[ctypes.CDLL, str]:
    """Open the first libglm5 that exists; ImportError listing what was tried otherwise.

    Candidates are tried lazily (pkg-config runs only when nothing before it loads). The path
    returned is the file actually opened (the loader's choice, for a bare name)."""
    tried = []
    seen = set()
    for where, path in _candidates(env):
        if not path:
            tried.append(f"{where}: `pkg-config --variable=libdir glm5` found no glm5.pc")
            continue
        if path in seen:
            continue
        seen.add(path)
        is_file_path = os.sep in path
        if is_file_path and not os.path.exists(path):
            tried.append(f"{where}: {path} (not found)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{where}: {path} ({e})")
            continue
        return lib, (os.path.abspath(path) if is_file_path else _loaded_file(lib, path))
    raise ImportError(
        "glm5: cannot load libglm5 (install it with `make install`, build it with `make build`, "
        "or set GLM5_LIBRARY to the library file or its folder); tried:\n  " + "\n  ".join(tried)
    )


def declare(lib: ctypes.CDLL, names=None) -> None:
    """Set restype/argtypes of the functions (all by default); ImportError naming a missing one."""
    for name in names if names is not None else _FUNCTIONS:
        restype, argtypes = _FUNCTIONS[name]
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError(f"glm5: the loaded library has no {name} (is it older than this binding?)") from None
        fn.restype = restype
        fn.argtypes = argtypes


def check_abi(lib, expected: int = ABI_VERSION, path: str = "libglm5") -> int:
    """Refuse a library of another ABI version than the one this binding mirrors."""
    found = int(lib.glm5_abi_version())
    if found != expected:
        raise ImportError(
            f"glm5: {path} has ABI version {found}, but this binding was written for ABI version "
            f"{expected}; use the binding that matches the library"
        )
    return found


LIB, LIBRARY_PATH = load_library(os.environ.get("GLM5_LIBRARY"))
# The ABI first, so that a library of another ABI is named as such, not as "missing function".
declare(LIB, ["glm5_abi_version"])
check_abi(LIB, ABI_VERSION, LIBRARY_PATH)
declare(LIB)


def text(p: Optional[bytes]) -> str:
    """A C string from the library as str (NULL as "")."""
    return "" if p is None else p.decode("utf-8", errors="replace")
