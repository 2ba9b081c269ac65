# glm5 — build, run and test. The README's two commands are `make demo` and `make check`.
#
#   make demo    install what is missing, build, run the main job on the bundled model
#   make check   install what is missing, build, run every test (Swift, C, Python, Rust)
#   make test-load   the bounded load test of `glm5 serve` (not part of check)
#   make sanitize    the tests under ASan, UBSan, TSan and valgrind (not part of check; below)
#   make fuzz [FUZZ_SECONDS=120] [FUZZ_TARGETS=...]   libFuzzer + ASan on every parser of outside data (not part of check)
#
#   make install [PREFIX=/usr/local] [DESTDIR=]   libglm5.so.1 (+ libglm5.so), glm5.h, glm5.pc, glm5
#   make uninstall [PREFIX=...] [DESTDIR=]        removes exactly those files
#
# The C library is built with the Swift runtime linked in statically (-static-stdlib), so that
# libglm5.so needs only system libraries (OpenBLAS, zstd, libc) at run time.

SWIFT        ?= swift
RELEASE_FLAGS = -c release -Xswiftc -static-stdlib
BIN          := .build/release
LIB          := $(BIN)/libglm5.so
CLI          := $(BIN)/glm5
MODEL        ?= models/glm5-tiny
FIXTURE      ?= Tests/Fixtures/tiny-dsa
DEMO_PROMPT  ?= def read_config(path):\n    """
CC           ?= cc
CFLAGS       ?= -std=c11 -O2 -Wall -Wextra -Werror -pedantic
PYTHON       ?= python3
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS     := libopenblas-dev libzstd-dev pkg-config

# Installation. BINDIR, LIBDIR, INCLUDEDIR and PKGCONFIGDIR may be set alone (e.g.
# LIBDIR=/usr/lib/x86_64-linux-gnu); DESTDIR is prepended to every path (staged installs) and
# never written into glm5.pc. After a direct (DESTDIR-less) install as root, LDCONFIG runs so that
# the loader's cache knows the library; LDCONFIG= skips it.
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LDCONFIG     ?= ldconfig
header_define = $(shell sed -n 's/^\#define $(1) \([0-9][0-9]*\).*/\1/p' include/glm5.h)
VERSION      := $(call header_define,GLM5_VERSION_MAJOR).$(call header_define,GLM5_VERSION_MINOR).$(call header_define,GLM5_VERSION_PATCH)
ABI          := $(call header_define,GLM5_ABI_VERSION)
# The soname carries the ABI version (set in Package.swift; test-c checks that they agree).
SONAME       := libglm5.so.$(ABI)
# A path under PREFIX as glm5.pc writes it (${prefix}/lib), so that pkg-config --define-prefix works.
pc_path       = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
run_ldconfig  = $(if $(and $(LDCONFIG),$(if $(DESTDIR),,1)),@if [ "$$(id -u)" = 0 ] && command -v $(LDCONFIG) >/dev/null; then echo $(LDCONFIG); $(LDCONFIG); fi)

.PHONY: deps build demo bench check test-swift test-c test-python test-rust test-install test-load install uninstall clean \
        sanitize sanitize-asan sanitize-tsan sanitize-c valgrind fuzz fuzz-build

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build $(RELEASE_FLAGS)
	ln -sf glm5-cli $(CLI)
	ln -sf libglm5.so $(BIN)/$(SONAME)

demo: build
	$(CLI) info $(MODEL)
	$(CLI) generate $(MODEL) --prompt "$$(printf '%b' '$(DEMO_PROMPT)')" -n 96 --temperature 0.7 --top-p 0.95 --seed 1

bench: build
	$(CLI) bench

check: build test-swift test-c test-python test-rust test-install
	@echo "all tests passed"

# Serial: MemoryTests measures the process's resident memory around one model's prefill, and a
# test of another suite running beside it was once counted in (+62 MB anonymous, a red CI).
test-swift: deps
	$(SWIFT) test --no-parallel

test-c: build
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_capi.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_capi
	cd Tests/c && ../../$(BIN)/test_capi ../Fixtures
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_sampling.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_sampling
	$(BIN)/test_sampling Tests/Fixtures
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_rl.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_rl
	$(BIN)/test_rl Tests/Fixtures
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_mtp.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_mtp
	$(BIN)/test_mtp $(MODEL)
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_stack.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_stack
	$(BIN)/test_stack $(MODEL) 128
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_threads.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_threads
	$(BIN)/test_threads $(MODEL)
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_oom.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_oom
	$(BIN)/test_oom $(MODEL)
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_fenv.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_fenv
	$(BIN)/test_fenv Tests/Fixtures/tiny-int4-g32 Tests/Fixtures/tiny-int4-g64-asym Tests/Fixtures/tiny-fp8-block Tests/Fixtures/tiny-dsa
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_tokenizer.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_tokenizer
	$(BIN)/test_tokenizer $(CURDIR)
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_dlopen.c -ldl -lm -o $(BIN)/test_dlopen
	$(BIN)/test_dlopen $(abspath $(LIB)) $(FIXTURE)
	@# The documented surface: only glm5_* symbols exported, no Swift runtime needed at run time.
	@extra=$$(nm -D --defined-only $(LIB) | awk '$$2 ~ /^[A-Z]$$/ && $$3 !~ /^glm5_/'); \
	  if [ -n "$$extra" ]; then echo "libglm5.so exports more than glm5_*:"; echo "$$extra"; exit 1; fi
	@readelf -d $(LIB) | grep -q 'Library soname: \[$(SONAME)\]' || \
	  { echo "libglm5.so's soname is not $(SONAME) (GLM5_ABI_VERSION in include/glm5.h; Package.swift):"; readelf -d $(LIB) | grep SONAME; exit 1; }
	@# Static TLS is reserved in every thread of the host (and carved out of its stack): keep it small.
	@tls=$$(readelf -lW $(LIB) | awk '$$1 == "TLS" { print $$6 }'); tls=$$(( $${tls:-0} )); \
	  if [ "$$tls" -gt 4096 ]; then echo "libglm5.so reserves $$tls bytes of static TLS per thread (limit 4096)"; exit 1; fi
	@if readelf -d $(LIB) | grep NEEDED | grep -qi swift; then echo "libglm5.so needs the Swift runtime:"; readelf -d $(LIB) | grep NEEDED; exit 1; fi
	@echo "libglm5.so: exports only glm5_*, needs: $$(readelf -d $(LIB) | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
	$(MAKE) -C examples/c GLM5_LIB_DIR=$(abspath $(BIN))
	examples/c/model_info $(FIXTURE)
	examples/c/generate $(FIXTURE) 8 11 42 7

test-python: build
	$(PYTHON) -c "import pytest" 2>/dev/null || $(PYTHON) -m pip install -q pytest numpy
	@# test_tokenizer_hf.py compares with HF tokenizers (PyPI; no torch) on the zstd-compressed corpus.
	$(PYTHON) -c "import tokenizers, zstandard" 2>/dev/null || $(PYTHON) -m pip install -q "tokenizers==0.23.3" zstandard \
	  || $(PYTHON) -m pip install -q --user --break-system-packages "tokenizers==0.23.3" zstandard \
	  || echo "warning: cannot pip-install tokenizers and zstandard: test_tokenizer_hf.py will be skipped"
	@# test_server_router.py puts two `glm5 serve` replicas behind the real sglang-router (PyPI).
	$(PYTHON) -c "import sglang_router" 2>/dev/null || $(PYTHON) -m pip install -q "sglang-router==0.3.2" \
	  || $(PYTHON) -m pip install -q --user --break-system-packages "sglang-router==0.3.2" \
	  || echo "warning: cannot pip-install sglang-router: test_server_router.py will be skipped"
	GLM5_LIBRARY=$(abspath $(LIB)) PYTHONPATH=bindings/python $(PYTHON) -m pytest -q bindings/python/tests Tests/cli

# The bounded load test of `glm5 serve` (32 concurrent clients on loopback; not part of check).
test-load: build
	GLM5_LOAD_TEST=1 GLM5_LIBRARY=$(abspath $(LIB)) PYTHONPATH=bindings/python $(PYTHON) -m pytest -q -s bindings/python/tests/test_server_load.py

# Sanitizer and checker runs (issue 13; not part of check; README "Tests", tools/sanitize/README.md).
# Each sanitizer build has its own --build-path, so the normal build is not disturbed.
#
#   make sanitize        the four below, in this order
#   make sanitize-asan   swift test under AddressSanitizer (+ LeakSanitizer), the C kernels also
#                        under UBSan: .build/asan
#   make sanitize-tsan   swift test under ThreadSanitizer: .build/tsan
#   make sanitize-c      the C tests and examples built with ASan + UBSan, against libglm5.so built
#                        so (.build/asan-lib); test_oom is left out (below)
#   make valgrind        memcheck on test_capi and examples/c/generate against `make build`'s
#                        libglm5.so: no errors, no definite leaks
#
# swiftc has no -sanitize=undefined on Linux, so UBSan reaches the C targets only (-Xcc). The
# Swift builds name the test product (or the library) so that the CLI's server dependencies are
# not built a second and third time. The C programs are compiled by the Swift toolchain's clang,
# whose ASan runtime (linked into the program, exported to the library) matches the library's
# instrumentation. tools/sanitize/README.md says why each suppression is there.
SAN_CC       ?= $(dir $(realpath $(shell command -v $(SWIFT))))clang
SAN_SWIFT    := --sanitize=address -Xcc -fsanitize=undefined
SAN_ENV      := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                LSAN_OPTIONS=suppressions=$(CURDIR)/tools/sanitize/lsan.supp
SAN_BIN      := .build/asan-lib/debug
SAN_CFLAGS   := -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fuse-ld=lld \
                -Wall -Wextra -Werror -pedantic -Iinclude
# $(call san_c,SOURCE): SOURCE linked with the sanitizer build of libglm5.so, into $(SAN_BIN).
san_c         = $(SAN_CC) $(SAN_CFLAGS) -pthread $(1) -L$(SAN_BIN) -lglm5 -Wl,-rpath,$(abspath $(SAN_BIN)) -lm \
                -o $(SAN_BIN)/$(basename $(notdir $(1)))
# valgrind 3.19 does not decode AVX-512: the kernels (GLM5_ISA) and OpenBLAS are held to AVX2. Nor
# can it read libglm5.so's DWARF 5 ("unhandled dwarf2 abbrev form code 0x25", then it gives up), so
# it runs a copy without the debug sections: the same code, and the symbol table still names every
# function in a report. No suppressions are needed (tools/sanitize/README.md).
VALGRIND     ?= valgrind
VG_BIN       := $(BIN)/valgrind
VALGRIND_RUN := GLM5_ISA=avx2 OPENBLAS_CORETYPE=Haswell $(VALGRIND) --error-exitcode=1 --leak-check=full \
                --show-leak-kinds=definite --errors-for-leak-kinds=definite

sanitize: sanitize-asan sanitize-tsan sanitize-c valgrind
	@echo "sanitizers and valgrind: no errors"

sanitize-asan: deps
	$(SWIFT) build $(SAN_SWIFT) --build-path .build/asan --product glm5PackageTests
	$(SAN_ENV) $(SWIFT) test $(SAN_SWIFT) --build-path .build/asan --skip-build

sanitize-tsan: deps
	$(SWIFT) build --sanitize=thread --build-path .build/tsan --product glm5PackageTests
	$(SWIFT) test --sanitize=thread --build-path .build/tsan --skip-build

# The C tests of test-c with the same arguments, except: test_stack's thread has 256 KiB instead
# of 128 (ASan's redzones take a model load past 128 KiB of stack; 160 is enough), and test_oom does not run
# (RLIMIT_AS also limits ASan's shadow reservations, so under ASan it measures nothing).
sanitize-c: deps
	$(SWIFT) build $(SAN_SWIFT) --build-path .build/asan-lib --product glm5
	ln -sf libglm5.so $(SAN_BIN)/$(SONAME)
	$(call san_c,Tests/c/test_capi.c)
	cd Tests/c && $(SAN_ENV) ../../$(SAN_BIN)/test_capi ../Fixtures
	$(call san_c,Tests/c/test_sampling.c)
	$(SAN_ENV) $(SAN_BIN)/test_sampling Tests/Fixtures
	$(call san_c,Tests/c/test_rl.c)
	$(SAN_ENV) $(SAN_BIN)/test_rl Tests/Fixtures
	$(call san_c,Tests/c/test_mtp.c)
	$(SAN_ENV) $(SAN_BIN)/test_mtp $(MODEL)
	$(call san_c,Tests/c/test_stack.c)
	$(SAN_ENV) $(SAN_BIN)/test_stack $(MODEL) 256
	$(call san_c,Tests/c/test_threads.c)
	$(SAN_ENV) $(SAN_BIN)/test_threads $(MODEL)
	$(call san_c,Tests/c/test_fenv.c)
	$(SAN_ENV) $(SAN_BIN)/test_fenv Tests/Fixtures/tiny-int4-g32 Tests/Fixtures/tiny-int4-g64-asym Tests/Fixtures/tiny-fp8-block Tests/Fixtures/tiny-dsa
	$(call san_c,Tests/c/test_tokenizer.c)
	$(SAN_ENV) $(SAN_BIN)/test_tokenizer $(CURDIR)
	$(SAN_CC) $(SAN_CFLAGS) Tests/c/test_dlopen.c -ldl -lm -o $(SAN_BIN)/test_dlopen
	$(SAN_ENV) $(SAN_BIN)/test_dlopen $(abspath $(SAN_BIN))/libglm5.so $(FIXTURE)
	$(call san_c,examples/c/model_info.c)
	$(SAN_ENV) $(SAN_BIN)/model_info $(FIXTURE)
	$(call san_c,examples/c/generate.c)
	$(SAN_ENV) $(SAN_BIN)/generate $(FIXTURE) 8 11 42 7

valgrind: build
	@command -v $(VALGRIND) >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind; }
	mkdir -p $(VG_BIN)
	objcopy --strip-debug $(LIB) $(VG_BIN)/$(SONAME)
	ln -sf $(SONAME) $(VG_BIN)/libglm5.so
	$(CC) $(CFLAGS) -g -pthread -Iinclude Tests/c/test_capi.c -L$(VG_BIN) -lglm5 -Wl,-rpath,$(abspath $(VG_BIN)) -o $(VG_BIN)/test_capi
	cd Tests/c && $(VALGRIND_RUN) ../../$(VG_BIN)/test_capi ../Fixtures
	$(CC) $(CFLAGS) -g -Iinclude examples/c/generate.c -L$(VG_BIN) -lglm5 -Wl,-rpath,$(abspath $(VG_BIN)) -o $(VG_BIN)/generate
	$(VALGRIND_RUN) $(VG_BIN)/generate $(FIXTURE) 8 11 42 7
# Coverage-guided fuzzing (Sources/GLM5Fuzz, Tests/fuzz/<target>/): the libFuzzer driver built with
# ASan into its own build path, then each target for FUZZ_SECONDS (tools/fuzz/run.sh: -timeout=1,
# -rss_limit_mb, leak detection; prints executions and coverage per target). Not part of check:
# `swift test` replays the committed corpora (FuzzCorpusTests).
FUZZ_SECONDS ?= 120
fuzz-build: deps
	$(SWIFT) build --build-path .build/fuzz --product glm5-fuzz \
	  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DGLM5_LIBFUZZER

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_TARGETS),FUZZ_TARGETS="$(FUZZ_TARGETS)") bash tools/fuzz/run.sh

test-rust: build
	cd bindings/rust && GLM5_LIB_DIR=$(abspath $(BIN)) cargo test --offline -q

# Installs what `make build` made (building it first only when it is missing, so that
# `make build && sudo make install` does not build as root).
install:
	@for f in $(LIB) $(BIN)/glm5-cli; do \
	  if [ ! -f $$f ]; then echo "$$f is missing: building first"; $(MAKE) build || exit 1; break; fi; \
	done
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libglm5.so
	install -m 644 include/glm5.h $(DESTDIR)$(INCLUDEDIR)/glm5.h
	install -m 755 $(BIN)/glm5-cli $(DESTDIR)$(BINDIR)/glm5
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' -e 's|@ABI@|$(ABI)|' \
	    tools/install/glm5.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/glm5.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/glm5.pc
	$(run_ldconfig)

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libglm5.so $(DESTDIR)$(PKGCONFIGDIR)/glm5.pc \
	      $(DESTDIR)$(INCLUDEDIR)/glm5.h $(DESTDIR)$(BINDIR)/glm5
	$(run_ldconfig)

# Installs into a temporary prefix and uses it the ways users do: C through pkg-config, the
# installed glm5 command, a pip-installed wheel in a fresh venv, the Rust crate through
# pkg-config; then uninstalls and checks that nothing is left (tools/install/test_install.sh).
test-install: build
	MAKE="$(MAKE)" CC="$(CC)" PYTHON="$(PYTHON)" bash tools/install/test_install.sh

clean:
	rm -rf .build bindings/rust/target
