"""Tokenizers: a Hugging Face tokenizer.json run by libglm5 (glm5_tokenizer_*), id for id what
the `tokenizers` library gives."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Iterable, Optional, Union

import numpy as np

from ._errors import Glm5Error, Status, check
from ._lib import (
    DETOKENIZE_SKIP_SPECIAL,
    LIB,
    TOKENIZE_PARSE_SPECIAL,
    c_int32_p,
    glm5_detokenizer_p,
    glm5_tokenizer_p,
    new_tokenizer_info,
)
from ._owned import _Owned


def _closed(what: str) -> Glm5Error:
    return Glm5Error(Status.INVALID_ARGUMENT, f"the {what} is closed")


def _ids_array(ids) -> np.ndarray:
    a = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if a.size and (a.min() < -(2**31) or a.max() >= 2**31):
        raise Glm5Error(Status.INVALID_ARGUMENT, "token ids must fit in int32")
    return a.astype(np.int32)


def _read_bytes(call, guess: int) -> bytes:
    """Two-call pattern for a bytes output: call(buf, capacity, n_ptr) -> status."""
    n = ctypes.c_size_t()
    cap = max(guess, 1)
    while True:
        buf = ctypes.create_string_buffer(cap)
        status = call(buf, cap, ctypes.byref(n))
        if status == Status.BUFFER_TOO_SMALL and n.value + 1 > cap:
            cap = n.value + 1
            continue
        check(status)
        return buf.raw[: n.value]


class Tokenizer(_Owned):
    """A tokenizer (glm5_tokenizer): ``Tokenizer(path)`` loads a folder with tokenizer.json (and
    tokenizer_config.json) or a tokenizer.json file (zstd-compressed files too). Immutable;
    shareable between threads.

        tok = glm5.Tokenizer("models/glm5-tiny")
        ids = tok.encode("def f(x):\\n    return x")     # int32 array
        assert tok.decode(ids) == "def f(x):\\n    return x"
    """

    _free_name = "glm5_tokenizer_free"

    def __init__(self, path: Union[str, bytes, "os.PathLike[str]"]):
        self._handle: Optional[int] = None
        self._lock = threading.Lock()
        self.path = os.fsdecode(path)
        handle = glm5_tokenizer_p()
        check(LIB.glm5_tokenizer_load(os.fsencode(path), ctypes.byref(handle)))
        self._handle = handle.value
        self._load_info()

    @classmethod
    def _from_handle(cls, handle: int, path: str) -> "Tokenizer":
        self = cls.__new__(cls)
        self._handle = handle
        self._lock = threading.Lock()
        self.path = path
        self._load_info()
        return self

    def _load_info(self) -> None:
        info = new_tokenizer_info()
        check(LIB.glm5_tokenizer_get_info(self._ptr(), ctypes.byref(info)))
        self.n_ids = int(info.n_ids)
        self.vocab_size = int(info.n_vocab)
        self.n_added = int(info.n_added)
        self.byte_level = bool(info.byte_level)
        self.eos_id = None if info.eos_id < 0 else int(info.eos_id)
        self.bos_id = None if info.bos_id < 0 else int(info.bos_id)
        self.pad_id = None if info.pad_id < 0 else int(info.pad_id)
        self.unk_id = None if info.unk_id < 0 else int(info.unk_id)

    def _ptr(self) -> int:
        handle = self._handle
        if handle is None:
            raise _closed("tokenizer")
        return handle

    def __len__(self) -> int:
        return self.n_ids

    def encode(self, text: Union[str, bytes], parse_special: bool = True) -> np.ndarray:
        """glm5_tokenize: the ids of ``text`` (str, or UTF-8 bytes) as an int32 array, no special
        tokens added. ``parse_special``: special tokens written in the text become their ids
        (HF's default); False encodes them as plain text."""
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        flags = TOKENIZE_PARSE_SPECIAL if parse_special else 0
        handle = self._ptr()
        n = ctypes.c_size_t()
        cap = len(data) + 16
        while True:
            out = np.empty(cap, dtype=np.int32)
            status = LIB.glm5_tokenize(handle, data, len(data), flags, out.ctypes.data_as(c_int32_p), cap, ctypes.byref(n))
            if status == Status.BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            check(status)
            return out[: n.value].copy()

    def decode_bytes(self, ids, skip_special_tokens: bool = False) -> bytes:
        """glm5_detokenize as UTF-8 bytes."""
        a = _ids_array(ids)
        flags = DETOKENIZE_SKIP_SPECIAL if skip_special_tokens else 0
        handle = self._ptr()
        return _read_bytes(
            lambda buf, cap, n: LIB.glm5_detokenize(handle, a.ctypes.data_as(c_int32_p), a.size, flags, buf, cap, n),
            4 * a.size + 16,
        )

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """glm5_detokenize: the text of ``ids`` (invalid UTF-8 replaced by U+FFFD, as HF)."""
        return self.decode_bytes(ids, skip_special_tokens).decode("utf-8")

    def token_to_piece(self, id: int) -> bytes:
        """glm5_token_to_piece: the bytes one token decodes to on its own (maybe part of a
        UTF-8 sequence)."""
        handle = self._ptr()
        return _read_bytes(lambda buf, cap, n: LIB.glm5_token_to_piece(handle, int(id), buf, cap, n), 64)

    def id_to_token(self, id: int) -> str:
        """glm5_tokenizer_token_text: the vocabulary string of an id ("Ġthe", "<|user|>")."""
        handle = self._ptr()
        return _read_bytes(
            lambda buf, cap, n: LIB.glm5_tokenizer_token_text(handle, int(id), buf, cap, n, None), 64
        ).decode("utf-8")

    def is_special(self, id: int) -> bool:
        handle = self._ptr()
        flag = ctypes.c_int32()
        n = ctypes.c_size_t()
        buf = ctypes.create_string_buffer(256)
        status = LIB.glm5_tokenizer_token_text(handle, int(id), buf, 256, ctypes.byref(n), ctypes.byref(flag))
        if status == Status.BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(n.value + 1)
            status = LIB.glm5_tokenizer_token_text(handle, int(id), buf, n.value + 1, ctypes.byref(n), ctypes.byref(flag))
        check(status)
        return bool(flag.value)

    def token_to_id(self, token: str) -> Optional[int]:
        """glm5_tokenizer_token_id: the id of a token string, or None."""
        data = token.encode("utf-8")
        out = ctypes.c_int32()
        check(LIB.glm5_tokenizer_token_id(self._ptr(), data, len(data), ctypes.byref(out)))
        return None if out.value < 0 else int(out.value)

    def stream(self, skip_special_tokens: bool = False) -> "Detokenizer":
        """A streaming detokenizer (glm5_detokenizer_new)."""
        return Detokenizer(self, skip_special_tokens)


class Detokenizer(_Owned):
    """Streaming decode (glm5_detokenizer): ``push(ids)`` returns the text the ids complete, an
    incomplete UTF-8 sequence waiting for the next ids; ``finish()`` returns what is left."""

    _free_name = "glm5_detokenizer_free"

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False):
        self._handle: Optional[int] = None
        self._lock = threading.Lock()
        self.tokenizer = tokenizer
        handle = glm5_detokenizer_p()
        flags = DETOKENIZE_SKIP_SPECIAL if skip_special_tokens else 0
        check(LIB.glm5_detokenizer_new(tokenizer._ptr(), flags, ctypes.byref(handle)))
        self._handle = handle.value

    def _ptr(self) -> int:
        handle = self._handle
        if handle is None:
            raise _closed("detokenizer")
        return handle

    def push(self, ids: Union[int, Iterable[int]]) -> str:
        a = _ids_array([ids] if isinstance(ids, (int, np.integer)) else list(ids))
        handle = self._ptr()
        return _read_bytes(
            lambda buf, cap, n: LIB.glm5_detokenizer_push(handle, a.ctypes.data_as(c_int32_p), a.size, buf, cap, n),
            4 * a.size + 64,
        ).decode("utf-8")

    def finish(self) -> str:
        handle = self._ptr()
        return _read_bytes(lambda buf, cap, n: LIB.glm5_detokenizer_finish(handle, buf, cap, n), 16).decode("utf-8")
