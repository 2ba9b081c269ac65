"""The module itself: library lookup, ABI check, versions, status and dtype names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import glm5
from glm5 import _lib

PACKAGE_PARENT = str(Path(glm5.__file__).resolve().parents[1])


def run_import(env_library):
    """Import glm5 in a fresh interpreter with GLM5_LIBRARY set; (returncode, output)."""
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    env["GLM5_LIBRARY"] = env_library
    code = "import glm5; print(glm5.library_path, glm5.abi_version())"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def test_versions():
    assert glm5.abi_version() == glm5.ABI_VERSION == 1
    v = glm5.version()
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", v)
    assert m, v
    major, minor, patch = map(int, m.groups())
    assert glm5.version_number() == major * 10000 + minor * 100 + patch


def test_library_path_is_the_loaded_file():
    assert os.path.isfile(glm5.library_path)
    if os.environ.get("GLM5_LIBRARY"):
        assert os.path.samefile(
            glm5.library_path,
            os.environ["GLM5_LIBRARY"]
            if os.path.isfile(os.environ["GLM5_LIBRARY"])
            else os.path.join(os.environ["GLM5_LIBRARY"], "libglm5.so"),
        )


def test_status_enum_and_strings():
    expected = {
        glm5.Status.OK: "ok",
        glm5.Status.INVALID_ARGUMENT: "invalid argument",
        glm5.Status.IO: "I/O error",
        glm5.Status.BAD_FORMAT: "bad format",
        glm5.Status.UNSUPPORTED: "unsupported",
        glm5.Status.OUT_OF_MEMORY: "out of memory",
        glm5.Status.CONTEXT_FULL: "context full",
        glm5.Status.BUSY: "busy",
        glm5.Status.INTERNAL: "internal error",
        glm5.Status.BUFFER_TOO_SMALL: "buffer too small",
        glm5.Status.RECORD_FULL: "record full",
        glm5.Status.VERSION_MISMATCH: "version mismatch",
        glm5.Status.INCOMPATIBLE: "incompatible",
    }
    assert [int(s) for s in expected] == list(range(13)) == [int(s) for s in glm5.Status]
    for status, text in expected.items():
        assert glm5.status_string(status) == text
        assert status.text == text
    assert glm5.status_string(13) == "unknown status"
    assert glm5.status_string(-1) == "unknown status"


def test_dtype_names():
    names = ["F32", "BF16", "F16", "F8_E4M3", "F8_E5M2", "I8", "U8", "I16", "I32", "I64", "F64", "BOOL",
             "U16", "U32", "U64"]
    for i, name in enumerate(names):
        assert glm5.DType(i).name == name
        assert glm5.dtype_name(i) == name
    assert glm5.dtype_name(15) == "unknown"
    assert glm5.dtype_names(0b101) == ("F32", "F16")


def test_every_function_is_declared():
    for name, (restype, argtypes) in _lib._FUNCTIONS.items():
        fn = getattr(_lib.LIB, name)
        assert fn.restype is restype, name
        assert list(fn.argtypes) == list(argtypes), name


def test_inline_init_functions_are_not_needed():
    """The header's glm5_*_init are static inline: the library does not export them, and the
    binding fills its structs itself (struct_size = its own sizeof, defaults as in the header)."""
    import ctypes

    for name in ("glm5_model_params_init", "glm5_model_info_init", "glm5_session_params_init"):
        assert name not in _lib._FUNCTIONS
    p = _lib.new_model_params()
    assert (p.struct_size, p.n_threads) == (ctypes.sizeof(_lib.glm5_model_params), 0) == (8, 0)
    i = _lib.new_model_info()
    assert i.struct_size == ctypes.sizeof(_lib.glm5_model_info) == 136
    assert bytes(i)[4:] == bytes(136 - 4)
    sp = _lib.new_session_params()
    assert (sp.struct_size, sp.max_tokens, sp.record, sp.no_mtp, sp.record_max_bytes) == (24, 0, 0, 0, 0)
    for name in ("glm5_record_info_init", "glm5_replay_init"):
        assert name not in _lib._FUNCTIONS
    ri = _lib.new_record_info()
    assert ri.struct_size == ctypes.sizeof(_lib.glm5_record_info) == 56
    assert bytes(ri)[4:] == bytes(56 - 4)
    rp = _lib.new_replay()
    assert rp.struct_size == ctypes.sizeof(_lib.glm5_replay) and rp.reserved0 == 0
    assert not rp.topk and not rp.expert_ids and not rp.expert_weights
    for name in ("glm5_sampling_params_init", "glm5_sample_output_init"):
        assert name not in _lib._FUNCTIONS
    sa = _lib.new_sampling_params()
    assert sa.struct_size == ctypes.sizeof(_lib.glm5_sampling_params)
    assert (sa.temperature, sa.top_k, sa.top_p, sa.min_p, sa.max_new_tokens, sa.seed) == (1.0, 0, 1.0, 0.0, 128, 0)
    assert not sa.stop_token_ids and sa.n_stop_token_ids == 0 and sa.ignore_eos == 0 and sa.n_top_logprobs == 0
    assert sa.speculative == 0
    so = _lib.new_sample_output()
    assert so.struct_size == ctypes.sizeof(_lib.glm5_sample_output)
    assert (so.finish_reason, so.capacity, so.n_tokens, so.stop_token_id, so.status) == (0, 0, 0, -1, 0)
    assert not so.tokens and not so.logprobs and not so.top_ids and not so.accepted and so.n_steps == 0
    assert so.weight_version == b""
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert (ctypes.sizeof(_lib.glm5_sampling_params), ctypes.sizeof(_lib.glm5_sample_output)) == (64, 224)
        assert ctypes.sizeof(_lib.glm5_replay) == 32


HEADER = Path(__file__).resolve().parents[3] / "include" / "glm5.h"


def header_functions():
    """The functions glm5.h declares (static inline ones excluded)."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    text = re.sub(r"static inline[^{]*\{.*?\n\}", "", text, flags=re.S)
    return set(re.findall(r"\b(glm5_[a-z0-9_]+)\s*\([^;{)]*(?:\([^)]*\)[^;{)]*)*\)\s*;", text))


@pytest.mark.skipif(not HEADER.is_file(), reason="not in a source checkout")
def test_binding_declares_exactly_the_header_functions():
    declared = header_functions()
    assert "glm5_session_append" in declared and "glm5_model_score" in declared
    assert "glm5_model_params_init" not in declared
    assert declared == set(_lib._FUNCTIONS)


def test_abi_mismatch_raises_import_error():
    class FakeLib:
        def __init__(self, v):
            self.v = v

        def glm5_abi_version(self):
            return self.v

    assert _lib.check_abi(FakeLib(1), 1) == 1
    with pytest.raises(ImportError, match=r"ABI version 2.*ABI version 1"):
        _lib.check_abi(FakeLib(2), 1, "libglm5-test.so")
    # And the real library against a binding written for another ABI.
    with pytest.raises(ImportError, match="ABI version"):
        _lib.check_abi(_lib.LIB, _lib.ABI_VERSION + 1)


def test_abi_mismatch_at_import():
    """Importing the package against a library of another ABI fails with ImportError.

    A fresh interpreter whose ctypes.CDLL answers glm5_abi_version with 2.
    """
    code = """
import ctypes
Real = ctypes.CDLL
class OtherAbi(Real):
    def __getattr__(self, name):
        if name == "glm5_abi_version":
            f = ctypes.CFUNCTYPE(ctypes.c_uint32)(lambda: 2)
            self.__dict__[name] = f
            return f
        return super().__getattr__(name)
ctypes.CDLL = OtherAbi
try:
    import glm5
except ImportError as e:
    print("ImportError:", e)
else:
    print("imported")
"""
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ImportError:"), p.stdout
    assert "ABI version 2" in p.stdout and "ABI version 1" in p.stdout


def test_env_library_file_and_folder():
    path = glm5.library_path
    rc, out = run_import(path)
    assert rc == 0, out
    assert out.split()[-1] == "1"
    rc, out = run_import(os.path.dirname(path))
    assert rc == 0, out
    assert os.path.samefile(out.split()[0], path)


def test_env_library_missing_is_import_error():
    rc, out = run_import("/nonexistent/dir/libglm5.so")
    assert rc != 0
    assert "ImportError" in out
    assert "/nonexistent/dir/libglm5.so" in out
    assert "GLM5_LIBRARY" in out


def test_candidates_order(tmp_path):
    assert _lib.candidates(str(tmp_path)) == [("GLM5_LIBRARY", str(tmp_path / "libglm5.so"))]
    found = _lib.candidates(None)
    where = [w for w, _ in found]
    # Each place once, in this order (pkg-config's only when glm5.pc is found).
    order = ["next to the package", "repository build", "system loader", "pkg-config libdir", "standard prefix"]
    assert [w for w in order if w in where] == sorted(set(where), key=where.index)
    assert where[0] == "next to the package"
    if _lib._in_source_checkout():
        repo_build = found[1][1]
        assert where[1] == "repository build"
        assert repo_build.endswith(os.path.join(".build", "release", "libglm5.so"))
    assert ("system loader", "libglm5.so.%d" % _lib.ABI_VERSION) in found
    assert ("standard prefix", "/usr/local/lib/libglm5.so.%d" % _lib.ABI_VERSION) in found
    assert ("standard prefix", "/usr/lib/libglm5.so") in found
    assert len(set(p for _, p in found)) == len(found)


def test_pkg_config_candidate(tmp_path):
    """A glm5.pc on PKG_CONFIG_PATH puts its libdir before the standard prefixes."""
    pc = tmp_path / "glm5.pc"
    pc.write_text(
        "prefix=%s\nlibdir=${prefix}/lib\nName: glm5\nDescription: t\nVersion: 0.3.0\nLibs: -L${libdir} -lglm5\n"
        % tmp_path
    )
    old = os.environ.get("PKG_CONFIG_PATH")
    os.environ["PKG_CONFIG_PATH"] = str(tmp_path)
    try:
        if _lib._pkg_config_libdir() is None:
            pytest.skip("no pkg-config program")
        found = _lib.candidates(None)
    finally:
        if old is None:
            del os.environ["PKG_CONFIG_PATH"]
        else:
            os.environ["PKG_CONFIG_PATH"] = old
    where = [w for w, _ in found]
    assert ("pkg-config libdir", str(tmp_path / "lib" / "libglm5.so")) in found
    assert where.index("pkg-config libdir") < where.index("standard prefix")
    assert where.index("system loader") < where.index("pkg-config libdir")


def header_struct_fields(name):
    """The field names of `typedef struct name { ... } name;` in glm5.h, in order."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    m = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), text, flags=re.S)
    assert m, name
    # "char weight_version[GLM5_WEIGHT_VERSION_SIZE]" is the field weight_version.
    return [
        re.search(r"(\w+)\s*(?:\[\w+\])?$", decl.strip()).group(1) for decl in m.group(1).split(";") if decl.strip()
    ]


@pytest.mark.skipif(not HEADER.is_file(), reason="not in a source checkout")
@pytest.mark.parametrize(
    "name",
    [
        "glm5_model_params",
        "glm5_model_info",
        "glm5_session_params",
        "glm5_sampling_params",
        "glm5_sample_output",
        "glm5_record_info",
        "glm5_replay",
    ],
)
def test_struct_fields_follow_the_header(name):
    ours = [f for f, _ in getattr(_lib, name)._fields_]
    assert ours == header_struct_fields(name)


@pytest.mark.skipif(not HEADER.is_file(), reason="not in a source checkout")
def test_max_top_logprobs_is_the_header_constant():
    m = re.search(r"#define GLM5_MAX_TOP_LOGPROBS (\d+)", HEADER.read_text())
    assert m and int(m.group(1)) == _lib.MAX_TOP_LOGPROBS == glm5.MAX_TOP_LOGPROBS


@pytest.mark.skipif(not HEADER.is_file(), reason="not in a source checkout")
def test_weight_version_size_and_restore_flag_are_the_header_constants():
    text = HEADER.read_text()
    m = re.search(r"#define GLM5_WEIGHT_VERSION_SIZE (\d+)", text)
    assert m and int(m.group(1)) == _lib.WEIGHT_VERSION_SIZE == glm5.WEIGHT_VERSION_SIZE
    import ctypes

    assert _lib.glm5_sample_output.weight_version.size == _lib.WEIGHT_VERSION_SIZE * ctypes.sizeof(ctypes.c_char)
    m = re.search(r"#define GLM5_RESTORE_ANY_WEIGHT_VERSION (\d+)u", text)
    assert m and int(m.group(1)) == _lib.RESTORE_ANY_WEIGHT_VERSION


@pytest.mark.skipif(not HEADER.is_file(), reason="not in a source checkout")
def test_status_values_are_the_header_enum():
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    body = re.search(r"typedef enum glm5_status \{(.*?)\} glm5_status;", text, flags=re.S).group(1)
    header = {name: int(v) for name, v in re.findall(r"GLM5_(?:ERR_)?(\w+)\s*=\s*(\d+)", body)}
    assert header == {s.name: int(s) for s in glm5.Status}


def test_error_classes_for_the_0_2_statuses():
    for status, cls in [
        (glm5.Status.RECORD_FULL, glm5.RecordFullError),
        (glm5.Status.VERSION_MISMATCH, glm5.VersionMismatchError),
        (glm5.Status.INCOMPATIBLE, glm5.IncompatibleError),
    ]:
        e = glm5.Glm5Error(int(status), "why")
        assert type(e) is cls and isinstance(e, glm5.Glm5Error)
        assert e.status is status and e.message == "why"
        assert str(e) == f"{status.text}: why"
        assert cls.__name__ in glm5.__all__
