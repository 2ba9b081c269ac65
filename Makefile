# glm5 — build, run and test. The README's two commands are `make demo` and `make check`.
#
#   make demo    install what is missing, build, run the main job on the bundled model
#   make check   install what is missing, build, run every test (Swift, C, Python, Rust)
#
# The C library is built with the Swift runtime linked in statically (-static-stdlib), so that
# libglm5.so needs only system libraries (OpenBLAS, zstd, libc) at run time.

SWIFT        ?= swift
RELEASE_FLAGS = -c release -Xswiftc -static-stdlib
BIN          := .build/release
LIB          := $(BIN)/libglm5.so
CLI          := $(BIN)/glm5
MODEL        ?= Tests/Fixtures/tiny-dsa
CC           ?= cc
CFLAGS       ?= -std=c11 -O2 -Wall -Wextra -Werror -pedantic
PYTHON       ?= python3
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS     := libopenblas-dev libzstd-dev pkg-config

.PHONY: deps build demo bench check test-swift test-c test-python test-rust clean

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build $(RELEASE_FLAGS)
	ln -sf glm5-cli $(CLI)

demo: build
	$(CLI) info $(MODEL)
	$(CLI) generate $(MODEL) 11 42 7 199 3 -n 12

bench: build
	$(CLI) bench

check: build test-swift test-c test-python test-rust
	@echo "all tests passed"

test-swift: deps
	$(SWIFT) test

test-c: build
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_capi.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_capi
	cd Tests/c && ../../$(BIN)/test_capi ../Fixtures
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_sampling.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_sampling
	$(BIN)/test_sampling Tests/Fixtures
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_rl.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_rl
	$(BIN)/test_rl Tests/Fixtures
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_fenv.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -lm -o $(BIN)/test_fenv
	$(BIN)/test_fenv Tests/Fixtures/tiny-int4-g32 Tests/Fixtures/tiny-int4-g64-asym Tests/Fixtures/tiny-fp8-block Tests/Fixtures/tiny-dsa
	$(CC) $(CFLAGS) -pthread -Iinclude Tests/c/test_tokenizer.c -L$(BIN) -lglm5 -Wl,-rpath,$(abspath $(BIN)) -o $(BIN)/test_tokenizer
	$(BIN)/test_tokenizer $(CURDIR)
	$(CC) $(CFLAGS) -Iinclude Tests/c/test_dlopen.c -ldl -lm -o $(BIN)/test_dlopen
	$(BIN)/test_dlopen $(abspath $(LIB)) $(MODEL)
	@# The documented surface: only glm5_* symbols exported, no Swift runtime needed at run time.
	@extra=$$(nm -D --defined-only $(LIB) | awk '$$2 ~ /^[A-Z]$$/ && $$3 !~ /^glm5_/'); \
	  if [ -n "$$extra" ]; then echo "libglm5.so exports more than glm5_*:"; echo "$$extra"; exit 1; fi
	@if readelf -d $(LIB) | grep NEEDED | grep -qi swift; then echo "libglm5.so needs the Swift runtime:"; readelf -d $(LIB) | grep NEEDED; exit 1; fi
	@echo "libglm5.so: exports only glm5_*, needs: $$(readelf -d $(LIB) | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"
	$(MAKE) -C examples/c GLM5_LIB_DIR=$(abspath $(BIN))
	examples/c/model_info $(MODEL)
	examples/c/generate $(MODEL) 8 11 42 7

test-python: build
	$(PYTHON) -c "import pytest" 2>/dev/null || $(PYTHON) -m pip install -q pytest numpy
	@# test_tokenizer_hf.py compares with HF tokenizers (PyPI; no torch) on the zstd-compressed corpus.
	$(PYTHON) -c "import tokenizers, zstandard" 2>/dev/null || $(PYTHON) -m pip install -q "tokenizers==0.23.3" zstandard \
	  || $(PYTHON) -m pip install -q --user --break-system-packages "tokenizers==0.23.3" zstandard \
	  || echo "warning: cannot pip-install tokenizers and zstandard: test_tokenizer_hf.py will be skipped"
	GLM5_LIBRARY=$(abspath $(LIB)) PYTHONPATH=bindings/python $(PYTHON) -m pytest -q bindings/python/tests

test-rust: build
	cd bindings/rust && GLM5_LIB_DIR=$(abspath $(BIN)) cargo test --offline -q

clean:
	rm -rf .build bindings/rust/target
