#!/usr/bin/env bash
# `make test-install`: install into a temporary prefix and use the installed files the ways users
# do, each from outside the repository and with nothing of the build folder in reach:
#   1. the layout (soname, symlinks, glm5.pc) and a staged install (DESTDIR);
#   2. C: examples/c/model_info.c compiled with `pkg-config --cflags --libs glm5`;
#   3. the installed `glm5` command;
#   4. Python: a wheel built from bindings/python, pip-installed into a fresh venv, importing the
#      installed library through LD_LIBRARY_PATH alone and through pkg-config alone;
#   5. Rust: a copy of the crate (whose repository fallback does not exist), built and tested
#      through pkg-config alone;
#   6. `make uninstall` leaves no file behind.
# Needs `make build` first (the Makefile target does it). About 30 s beyond the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MAKE=${MAKE:-make}
CC=${CC:-cc}
PYTHON=${PYTHON:-python3}
FIXTURE=$REPO/Tests/Fixtures/tiny-dsa

WORK=$(mktemp -d)
trap '[ -n "${TEST_INSTALL_KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"' EXIT
PREFIX=$WORK/prefix
mkdir -p "$WORK/scratch"
# Nothing may find the library by accident: no explicit choices, no repository on any path.
unset GLM5_LIBRARY GLM5_LIB_DIR PYTHONPATH LD_LIBRARY_PATH PKG_CONFIG_PATH
step() { echo "test-install: $*"; }
fail() { echo "test-install: FAILED: $*" >&2; exit 1; }
pc() { pkg-config "$@" | sed 's/[[:space:]]*$//'; }   # pkg-config ends some answers with a space

# 1. Layout ----------------------------------------------------------------------------------
step "make install PREFIX=$PREFIX"
$MAKE -s --no-print-directory install PREFIX="$PREFIX" LDCONFIG= >/dev/null
ABI=$(sed -n 's/^#define GLM5_ABI_VERSION \([0-9]*\).*/\1/p' include/glm5.h)
VERSION=$(sed -n 's/^#define GLM5_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/glm5.h | paste -sd.)
expected="bin/glm5
include/glm5.h
lib/libglm5.so
lib/libglm5.so.$ABI
lib/pkgconfig/glm5.pc"
got=$(cd "$PREFIX" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort)
[ "$got" = "$expected" ] || fail "installed files are
$got
instead of
$expected"
[ "$(readlink "$PREFIX/lib/libglm5.so")" = "libglm5.so.$ABI" ] || fail "lib/libglm5.so is not a link to libglm5.so.$ABI"
[ -f "$PREFIX/lib/libglm5.so.$ABI" ] && [ ! -L "$PREFIX/lib/libglm5.so.$ABI" ] || fail "lib/libglm5.so.$ABI is not a file"
readelf -d "$PREFIX/lib/libglm5.so.$ABI" | grep "Library soname: \[libglm5.so.$ABI\]" >/dev/null || fail "soname is not libglm5.so.$ABI"
cmp -s "$PREFIX/include/glm5.h" include/glm5.h || fail "glm5.h differs"
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
[ "$(pc --modversion glm5)" = "$VERSION" ] || fail "pkg-config --modversion glm5 is not $VERSION"
[ "$(pc --variable=libdir glm5)" = "$PREFIX/lib" ] || fail "pkg-config libdir is $(pc --variable=libdir glm5)"
[ "$(pc --cflags glm5)" = "-I$PREFIX/include" ] || fail "pkg-config --cflags glm5 is $(pc --cflags glm5)"
[ "$(pc --libs glm5)" = "-L$PREFIX/lib -lglm5" ] || fail "pkg-config --libs glm5 is $(pc --libs glm5)"
unset PKG_CONFIG_PATH

step "make install DESTDIR=… PREFIX=/opt/glm5 (staged)"
STAGE=$WORK/stage
$MAKE -s --no-print-directory install DESTDIR="$STAGE" PREFIX=/opt/glm5 >/dev/null
[ -f "$STAGE/opt/glm5/lib/libglm5.so.$ABI" ] && [ -x "$STAGE/opt/glm5/bin/glm5" ] || fail "DESTDIR install misplaced files"
grep -qx 'prefix=/opt/glm5' "$STAGE/opt/glm5/lib/pkgconfig/glm5.pc" || fail "DESTDIR leaked into glm5.pc"
grep -qx 'libdir=${prefix}/lib' "$STAGE/opt/glm5/lib/pkgconfig/glm5.pc" || fail "glm5.pc's libdir is not \${prefix}/lib"
$MAKE -s --no-print-directory uninstall DESTDIR="$STAGE" PREFIX=/opt/glm5 >/dev/null
[ -z "$(find "$STAGE" \( -type f -o -type l \))" ] || fail "DESTDIR uninstall left $(find "$STAGE" \( -type f -o -type l \))"

cd "$WORK/scratch"   # outside the repository from here on

# 2. C through pkg-config ----------------------------------------------------------------------
step "C: cc \$(pkg-config --cflags --libs glm5) model_info.c"
cp "$REPO/examples/c/model_info.c" .
# shellcheck disable=SC2046
PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig $CC -std=c11 -O2 -Wall -Wextra -Werror -pedantic \
  $(PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --cflags glm5) model_info.c \
  $(PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --libs glm5) -o model_info
readelf -d model_info | grep "Shared library: \[libglm5.so.$ABI\]" >/dev/null || fail "model_info does not need libglm5.so.$ABI"
# (Outputs are captured before grep -q: under pipefail, grep's early exit would fail the writer.)
deps=$(LD_LIBRARY_PATH=$PREFIX/lib ldd model_info)
grep -q "libglm5.so.$ABI => $PREFIX/lib/libglm5.so.$ABI" <<<"$deps" \
  || fail "model_info does not resolve libglm5 in the prefix: $(grep glm5 <<<"$deps")"
LD_LIBRARY_PATH=$PREFIX/lib ./model_info "$FIXTURE" > c.out || fail "model_info failed: $(cat c.out)"
grep -q "vocab" c.out || fail "model_info printed: $(cat c.out)"

# 3. The installed command ---------------------------------------------------------------------
step "$PREFIX/bin/glm5 info"
"$PREFIX/bin/glm5" info "$FIXTURE" > cli.out || fail "glm5 info failed: $(cat cli.out)"
grep -q "vocab" cli.out || fail "glm5 info printed: $(cat cli.out)"
deps=$(ldd "$PREFIX/bin/glm5")
if grep -q "$REPO" <<<"$deps"; then fail "the installed glm5 links into the repository"; fi

# 4. Python: a wheel in a fresh venv -----------------------------------------------------------
step "Python: wheel of bindings/python into a fresh venv"
# Build from a copy: pip builds in the source folder, and a libglm5.so copied next to the
# package in the checkout would end up in the wheel and mask the lookup under test.
cp -r "$REPO/bindings/python" pysrc
rm -rf pysrc/glm5/libglm5.so pysrc/build pysrc/*.egg-info
if "$PYTHON" -c "import numpy" 2>/dev/null; then
  "$PYTHON" -m venv --system-site-packages venv   # numpy from the system: fast, offline
else
  "$PYTHON" -m venv venv && venv/bin/python -m pip install -q numpy
fi
# The build backend (setuptools) comes from PyPI in pip's isolated build environment; without
# network, fall back to the venv's own setuptools and wheel if it has them.
venv/bin/python -m pip wheel -q --no-deps -w dist ./pysrc 2>pip.err \
  || venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w dist ./pysrc 2>>pip.err \
  || fail "cannot build the wheel: $(cat pip.err)"
wheel=$(ls dist/glm5-*.whl)
case "$(basename "$wheel")" in glm5-*-py3-none-any.whl) ;; *) fail "unexpected wheel $wheel" ;; esac
venv/bin/python - "$wheel" <<'EOF' || fail "the wheel's contents are wrong"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "glm5/__init__.py" in names and "glm5/_lib.py" in names and "glm5/py.typed" in names, names
assert not [n for n in names if n.endswith(".so")], names          # the library is not in it
assert not [n for n in names if n.startswith("tests/")], names
EOF
venv/bin/python -m pip install -q --no-deps "$wheel" 2>>pip.err || fail "pip install failed: $(cat pip.err)"
check_py='
import os, sys, glm5
prefix = sys.argv[1]
assert os.path.samefile(glm5.library_path, os.path.join(prefix, "lib", "libglm5.so.%d" % glm5.ABI_VERSION)), glm5.library_path
assert glm5.__file__.startswith(sys.prefix), glm5.__file__      # the installed package
with open("/proc/self/maps") as f:
    mapped = {l.split()[-1] for l in f if "libglm5" in l}
assert mapped == {os.path.join(prefix, "lib", "libglm5.so.%d" % glm5.ABI_VERSION)}, mapped
m = glm5.Model(sys.argv[2], threads=1)
assert m.info.vocab_size > 0
lp = m.score([5, 17, 42, 7])
assert lp.shape == (4,)
print(glm5.version(), m.info.vocab_size)
'
LD_LIBRARY_PATH=$PREFIX/lib venv/bin/python -c "$check_py" "$PREFIX" "$FIXTURE" \
  || fail "import glm5 with LD_LIBRARY_PATH=$PREFIX/lib"
PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig venv/bin/python -c "$check_py" "$PREFIX" "$FIXTURE" \
  || fail "import glm5 with PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig"
# Without either, the import must fail, listing what it tried (unless glm5 is installed for real).
SYSTEM_GLM5=
if pkg-config --exists glm5 2>/dev/null || [ -e /usr/local/lib/libglm5.so.$ABI ] || [ -e /usr/lib/libglm5.so.$ABI ] \
   || { [ -x /sbin/ldconfig ] && /sbin/ldconfig -p | grep libglm5 >/dev/null; }; then
  SYSTEM_GLM5=1
  step "(glm5 is also installed on this system: skipping the negative checks)"
else
  if venv/bin/python -c "import glm5" 2>py.err; then fail "import glm5 found a library with nothing pointing at it"; fi
  grep -q "found no glm5.pc" py.err && grep -q "standard prefix: /usr/local/lib/libglm5.so.$ABI" py.err || fail "the ImportError does not list what it tried: $(cat py.err)"
fi

# 5. Rust through pkg-config -------------------------------------------------------------------
step "Rust: the crate (a copy, no repository build in reach) through pkg-config"
# The copy keeps the repository's relative layout for the tests' fixtures (Tests -> the
# repository's) but has no .build, so the crate's repository fallback cannot mask pkg-config.
mkdir -p rs/bindings
cp -r "$REPO/bindings/rust" rs/bindings/rust
rm -rf rs/bindings/rust/target
ln -s "$REPO/Tests" rs/Tests
[ ! -e rs/.build ] || fail "rs/.build exists"
export CARGO_TARGET_DIR=$WORK/scratch/rs-target
if [ -z "$SYSTEM_GLM5" ]; then
  ( cd rs/bindings/rust && ! cargo build --offline -q 2>"$WORK/scratch/rust-nopc.err" ) \
    || fail "the crate built without GLM5_LIB_DIR, pkg-config or a repository build"
  grep -q "pkg-config" rust-nopc.err || fail "the crate's failure does not mention pkg-config: $(cat rust-nopc.err)"
  step "  without pkg-config's glm5: $(grep -o "glm5: cannot find libglm5[^;]*" rust-nopc.err | head -1) …"
fi
( cd rs/bindings/rust && PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig cargo test --offline -q --test model 2>&1 ) > rust.out \
  || fail "cargo test through pkg-config: $(tail -30 rust.out)"
step "  $(grep 'test result' rust.out | tail -1)"
t=$(ls -t "$CARGO_TARGET_DIR"/debug/deps/model-* | grep -v '\.d$' | head -1)
readelf -d "$t" | grep "R.*PATH.*\[$PREFIX/lib\]" >/dev/null || fail "the test binary's run path is not $PREFIX/lib"
unset CARGO_TARGET_DIR

# 6. Uninstall ---------------------------------------------------------------------------------
cd "$REPO"
step "make uninstall PREFIX=$PREFIX"
$MAKE -s --no-print-directory uninstall PREFIX="$PREFIX" LDCONFIG= >/dev/null
left=$(find "$PREFIX" \( -type f -o -type l \))
[ -z "$left" ] || fail "uninstall left: $left"
step "ok (C via pkg-config, glm5 info, Python wheel via LD_LIBRARY_PATH and pkg-config, Rust via pkg-config, uninstall)"
