"""Lifetime of a library handle, shared by Model and Session."""

from __future__ import annotations

from typing import Optional

from ._lib import LIB


class _Owned:
    """Owns one handle (``self._handle``, guarded by ``self._lock``) and frees it with the C
    function named by ``_free_name``: on :meth:`close`, at the end of a ``with`` block, or when
    the last reference goes. Closing again does nothing; ``close`` waits for a call holding the
    lock on another thread."""

    _free_name: str
    _handle: Optional[int]

    def close(self) -> None:
        """Free the handle. Calling it again does nothing."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            getattr(LIB, self._free_name)(handle)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Also runs when __init__ failed (then there is no handle) or at interpreter exit.
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            try:
                getattr(LIB, self._free_name)(handle)
            except Exception:
                pass
