"""Status codes and the exceptions that carry them."""

from __future__ import annotations

import enum
from typing import Dict, Type, Union

from ._lib import LIB, text


class Status(enum.IntEnum):
    """Mirrors ``glm5_status`` (values pinned by the header)."""

    OK = 0
    INVALID_ARGUMENT = 1
    IO = 2
    BAD_FORMAT = 3
    UNSUPPORTED = 4
    OUT_OF_MEMORY = 5
    CONTEXT_FULL = 6
    BUSY = 7
    INTERNAL = 8
    BUFFER_TOO_SMALL = 9
    RECORD_FULL = 10
    VERSION_MISMATCH = 11
    INCOMPATIBLE = 12

    @property
    def text(self) -> str:
        """The library's short description ("invalid argument", ...)."""
        return status_string(self)


def status_string(status: Union[int, Status]) -> str:
    """glm5_status_string: a short description of a status; "unknown status" for others."""
    return text(LIB.glm5_status_string(int(status)))


def last_error() -> str:
    """glm5_last_error: the message of this thread's most recent failed call, or ""."""
    return text(LIB.glm5_last_error())


class Glm5Error(Exception):
    """A failed glm5 call.

    ``status`` is a :class:`Status` (an int if the library returned a value this binding does not
    know), ``message`` the library's message naming what was wrong. Raising ``Glm5Error(status,
    message)`` gives the subclass for that status, so ``except glm5.IoError`` and
    ``except glm5.Glm5Error`` (then ``e.status``) both work.
    """

    status: Union[Status, int]
    message: str

    def __new__(cls, status: Union[int, Status] = Status.INTERNAL, message: str = ""):
        if cls is Glm5Error:
            cls = _BY_STATUS.get(int(status), Glm5Error)
        return super().__new__(cls)

    def __init__(self, status: Union[int, Status] = Status.INTERNAL, message: str = ""):
        try:
            status = Status(int(status))
        except ValueError:
            status = int(status)
        self.status = status
        self.message = message
        super().__init__(status, message)

    def __str__(self) -> str:
        return f"{status_string(self.status)}: {self.message}" if self.message else status_string(self.status)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.message!r})"

    def __reduce__(self):
        return (Glm5Error, (int(self.status), self.message))


class InvalidArgumentError(Glm5Error, ValueError):
    """GLM5_ERR_INVALID_ARGUMENT: NULL, bad struct_size, value out of range, closed handle."""


class IoError(Glm5Error):
    """GLM5_ERR_IO: a file or folder could not be opened, read or mapped."""


class BadFormatError(Glm5Error):
    """GLM5_ERR_BAD_FORMAT: malformed JSON, safetensors, tensor shapes, inconsistent config."""


class UnsupportedError(Glm5Error):
    """GLM5_ERR_UNSUPPORTED: well-formed, but not something this version can run."""


class OutOfMemoryError(Glm5Error, MemoryError):
    """GLM5_ERR_OUT_OF_MEMORY."""


class ContextFullError(Glm5Error):
    """GLM5_ERR_CONTEXT_FULL: a session would exceed its maximum number of tokens."""


class BusyError(Glm5Error):
    """GLM5_ERR_BUSY: the handle is in use by another call right now."""


class InternalError(Glm5Error):
    """GLM5_ERR_INTERNAL: a bug in glm5."""


class BufferTooSmallError(Glm5Error):
    """GLM5_ERR_BUFFER_TOO_SMALL."""


class RecordFullError(Glm5Error):
    """GLM5_ERR_RECORD_FULL: a session's routing record would pass its byte bound
    (``record_max_bytes`` of :meth:`Model.session`); nothing was appended."""


class VersionMismatchError(Glm5Error):
    """GLM5_ERR_VERSION_MISMATCH: weight versions disagree (a delta made against other weights
    than the loaded ones, a saved session computed with another weight version)."""


class IncompatibleError(Glm5Error):
    """GLM5_ERR_INCOMPATIBLE: made for another model configuration (an update folder, a saved
    session)."""


_BY_STATUS: Dict[int, Type[Glm5Error]] = {
    Status.INVALID_ARGUMENT: InvalidArgumentError,
    Status.IO: IoError,
    Status.BAD_FORMAT: BadFormatError,
    Status.UNSUPPORTED: UnsupportedError,
    Status.OUT_OF_MEMORY: OutOfMemoryError,
    Status.CONTEXT_FULL: ContextFullError,
    Status.BUSY: BusyError,
    Status.INTERNAL: InternalError,
    Status.BUFFER_TOO_SMALL: BufferTooSmallError,
    Status.RECORD_FULL: RecordFullError,
    Status.VERSION_MISMATCH: VersionMismatchError,
    Status.INCOMPATIBLE: IncompatibleError,
}


def check(status: int) -> None:
    """Raise the Glm5Error for a non-OK status returned by the call just made on this thread."""
    if status != Status.OK:
        raise Glm5Error(status, last_error())
