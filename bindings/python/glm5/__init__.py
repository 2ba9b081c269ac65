"""glm5: GLM-5 inference on CPUs (ctypes bindings for libglm5, the C API of include/glm5.h).

    import glm5
    with glm5.Model("Tests/Fixtures/tiny-dsa") as m:
        print(m.info)
        s = m.session()
        next_logits = s.append([1, 2, 3])          # float32 [vocab]
        ids, logprobs = s.generate(8)              # greedy
        r = s.sample(8, temperature=0.7, top_p=0.9, seed=1)   # r.tokens, r.scaled_logprobs, ...
        print(m.score([1, 2, 3]))                  # float32 [3], NaN first

RL (see the README): ``Model.session(record=True)`` with ``Session.recorded_topk()`` /
``recorded_routes()`` and ``replay_topk=`` / ``replay_routes=`` on the appends and
``Model.score``; ``Model.update_weights`` / ``update_weights_delta`` / ``update_tensors`` and
``Model.weight_version``; ``Session.save()`` and ``Model.restore()``.

The library is found through GLM5_LIBRARY (a file or folder), next to this package, in the
repository's .build/release, or by the system loader; importing fails with ImportError if none
is found or its ABI version is not the one this binding was written for.
"""

from __future__ import annotations

from ._errors import (
    BadFormatError,
    BufferTooSmallError,
    BusyError,
    ContextFullError,
    Glm5Error,
    InternalError,
    InvalidArgumentError,
    IncompatibleError,
    IoError,
    OutOfMemoryError,
    RecordFullError,
    Status,
    UnsupportedError,
    VersionMismatchError,
    last_error,
    status_string,
)
from ._lib import (
    ABI_VERSION,
    LIB as _LIB,
    LIBRARY_PATH as library_path,
    MAX_SPECULATIVE,
    MAX_TOP_LOGPROBS,
    WEIGHT_VERSION_SIZE,
    text as _text,
)
from ._model import DType, Model, ModelInfo, dtype_name, dtype_names
from ._tokenizer import Detokenizer, Tokenizer
from ._session import SAMPLING_DEFAULTS, Logits, RecordInfo, SampleResult, Session, as_token_array

__version__ = "0.4.0"  # of this binding; the library's is glm5.version()

__all__ = [
    "ABI_VERSION",
    "BadFormatError",
    "BufferTooSmallError",
    "BusyError",
    "ContextFullError",
    "DType",
    "Glm5Error",
    "IncompatibleError",
    "InternalError",
    "InvalidArgumentError",
    "IoError",
    "Logits",
    "MAX_SPECULATIVE",
    "MAX_TOP_LOGPROBS",
    "Model",
    "ModelInfo",
    "OutOfMemoryError",
    "RecordFullError",
    "RecordInfo",
    "SAMPLING_DEFAULTS",
    "SampleResult",
    "Session",
    "Status",
    "Tokenizer",
    "Detokenizer",
    "UnsupportedError",
    "VersionMismatchError",
    "WEIGHT_VERSION_SIZE",
    "abi_version",
    "as_token_array",
    "dtype_name",
    "dtype_names",
    "last_error",
    "library_path",
    "status_string",
    "version",
    "version_number",
]


def abi_version() -> int:
    """glm5_abi_version: the ABI version of the loaded library (equals ABI_VERSION)."""
    return int(_LIB.glm5_abi_version())


def version() -> str:
    """glm5_version_string: the loaded library's version, e.g. "0.1.0"."""
    return _text(_LIB.glm5_version_string())


def version_number() -> int:
    """glm5_version_number: major * 10000 + minor * 100 + patch."""
    return int(_LIB.glm5_version_number())
