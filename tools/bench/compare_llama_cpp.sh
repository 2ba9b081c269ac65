#!/usr/bin/env bash
# glm5 against llama.cpp on the same GLM-5-shaped random model (issue 8), CPU, $THREADS threads.
#
# What it does, each step skipped when its output exists (delete an output to redo its step):
#   1. glm5: `swift build -c release` in this repo unless .build/release/glm5-cli exists and has
#      `bench --write-bf16`.                                    first build ~6 min, 0.5 GB
#   2. A Python venv ($VENV) for llama.cpp's converter: torch (CPU; /opt/wheels when it holds a
#      wheel, else PyPI), numpy, transformers 4.57.6 (llama.cpp's pins), cmake, ninja.
#                                                               ~1 min, 1.5 GB
#   3. llama.cpp: the copy vendored in the llama-cpp-python sdist ($LLAMA_SDIST, 0.3.36 has
#      GLM-DSA: src/models/glm-dsa.cpp) extracted under $LLAMA_ROOT, built there out of tree:
#      CPU backend, Release, GGML_NATIVE but AMX compiled out (LLAMA_AMX=0; why: below, at
#      step 3), no OpenSSL/CURL, targets llama-bench and llama-quantize only.
#                                                               8-13 min on 2 cores, 0.3 GB
#   4. $WORK/bf16: the bench model (hidden 2048, 8 layers, 64 experts top-8, DSA index_topk
#      2048, vocab 16384; SyntheticCheckpoint.glm5BenchConfigJSON) with random BF16 weights,
#      `glm5 bench --write-bf16`.                               0.5-2 min, 6.5 GB
#   5. $WORK/int4-g32: `glm5 quantize --group 32` of it (INT4 symmetric g32, BF16 scales; lm_head,
#      embeddings, router, indexer weights_proj kept BF16).     1-2 min, 1.9 GB
#   6. $WORK/model-bf16.gguf: llama.cpp's convert_hf_to_gguf.py on a view of $WORK/bf16 with a
#      synthetic tokenizer (tools/bench/llama_cpp_convert.py says why and what it patches).
#                                                               1-3 min, 6.5 GB (removed after 7
#                                                               unless KEEP_BF16_GGUF=1)
#   7. $WORK/model-q4_0.gguf: `llama-quantize $LLAMA_QUANT_ARGS ... Q4_0`. Q4_0 is symmetric
#      4-bit in groups of 32 with an F16 scale: the same 4.5 bits per weight as glm5's INT4 g32.
#      By default lm_head and the embeddings stay BF16 as in glm5's INT4 folder (llama.cpp's own
#      Q4_0 mix would make lm_head Q6_K: LLAMA_QUANT_ARGS= for that); the router stays F32 and
#      the indexer's weights_proj (2048 x 32) becomes Q4_0.     0.5 min, 1.9 GB
#   8. $ROUNDS rounds, alternating which engine goes first, of
#        llama-bench -m model-q4_0.gguf -t $THREADS -p $PROMPT -n $GEN -d $DEPTHS -r $REPS -o json
#                    $LLAMA_BENCH_ARGS
#        glm5 bench --preset glm5-bench --scratch $WORK/int4-g32 --threads $THREADS --reps $REPS
#                   --decode $GEN --depths $DEPTHS --json ...
#      then a side-by-side table (tools/bench/compare_table.py) of prefill $PROMPT tokens and
#      decode at each depth: best and median tokens/s of each engine over all rounds and reps,
#      and the ratio glm5 / llama.cpp (> 1: glm5 faster). Written to $WORK/results/table.md too.
#      Time per round on 2 cores: llama-bench ~40 min with REPS=1 (smoke run, busy machine),
#      ~10 min more per extra rep; glm5 ~4 min with REPS=1 (it also runs its probes, batched
#      decode and profile). llama-bench prefills each depth for real (14848 tokens for the
#      default depths, cached across reps) and llama.cpp's DSA applies the top-k as a mask to
#      dense attention over all positions (src/llama-graph.cpp, build_attn with top_k: ggml_fill
#      -INF + ggml_set_rows of the top-k + build_attn_mha), so that prefill grows with depth²:
#      the prefill to depth 8192 alone took ~25 min. The defaults (2 rounds x 3 reps) take
#      1.5-2 h; ROUNDS=1 or fewer DEPTHS for less.
# Peak disk ~17 GB under $WORK (steps 4-7), ~10 GB after. RAM: ~7 GB peak (step 5), benches ~3 GB.
#
# What is compared: llama-bench's pp$PROMPT at depth 0 against glm5's prefill of $PROMPT tokens;
# llama-bench's tg$GEN at each depth d (after a real prefill of d tokens) against glm5's decode
# of $GEN tokens on a synthetic cache of d positions (random cache rows; decode cost depends on
# the cache's size only, Session+Bench.swift; depth 0 means 1 position). glm5 samples each token
# (temperature 1, top-p 0.95) where llama-bench only decodes; llama-bench feeds random token ids.
# Depths above index_topk (2048) are where DSA attends to 2048 selected positions only.
# llama-bench also reports pp$PROMPT at each depth > 0; the table lists it for llama.cpp alone.
#
# Usage: tools/bench/compare_llama_cpp.sh        (from anywhere; parameters by environment)
#   WORK=/tmp/glm5-llama LLAMA_SDIST=/tmp/llcpp/ll.tar.gz LLAMA_ROOT=/tmp/llama VENV=/tmp/venv-llama
#   THREADS=2 PROMPT=512 GEN=32 DEPTHS=0,512,2048,4096,8192 REPS=3 ROUNDS=2
#   LLAMA_QUANT_ARGS="--output-tensor-type bf16 --token-embedding-type bf16" KEEP_BF16_GGUF=0
#   LLAMA_BENCH_ARGS= (more llama-bench flags, e.g. "-fa on")  LLAMA_AMX=0 (1: build with AMX)
#   JOBS=2 (build parallelism)  PREPARE_ONLY=1 (steps 1-7 only)
# Run it on a quiet machine: both engines use $THREADS threads and nothing else should.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${WORK:-/tmp/glm5-llama}
LLAMA_SDIST=${LLAMA_SDIST:-/tmp/llcpp/ll.tar.gz}
LLAMA_ROOT=${LLAMA_ROOT:-/tmp/llama}
VENV=${VENV:-/tmp/venv-llama}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-32}
DEPTHS=${DEPTHS:-0,512,2048,4096,8192}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
LLAMA_QUANT_ARGS=${LLAMA_QUANT_ARGS---output-tensor-type bf16 --token-embedding-type bf16}
KEEP_BF16_GGUF=${KEEP_BF16_GGUF:-0}
JOBS=${JOBS:-2}
PREPARE_ONLY=${PREPARE_ONLY:-0}
LLAMA_BENCH_ARGS=${LLAMA_BENCH_ARGS:-}
GLM5=$REPO/.build/release/glm5-cli

log() { printf '\n[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# logged LOG CMD...: run an external command with its output in LOG; on failure show LOG's end
# and stop. Prints how long it took.
logged() {
  local out=$1; shift
  local t0=$SECONDS
  if ! "$@" >"$out" 2>&1; then
    tail -n 30 "$out" >&2
    echo "failed: $* (log: $out)" >&2
    exit 1
  fi
  echo "  $((SECONDS - t0)) s (log: $out)"
}

mkdir -p "$WORK/results"
LOGS=$WORK/results

# 1. glm5
if [[ ! -x $GLM5 ]] || ! "$GLM5" bench --help 2>/dev/null | grep -q -- --write-bf16; then
  log "1. building glm5: swift build -c release in $REPO"
  logged "$LOGS/glm5-build.log" swift build -c release --package-path "$REPO"
fi

# 2. Python venv for the converter (and cmake/ninja for step 3)
if [[ ! -f $VENV/.glm5-compare-ready ]]; then
  log "2. Python venv $VENV"
  torch=torch
  wheel=$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | head -n 1 || true)
  if [[ -n $wheel ]]; then torch=$wheel; fi
  python3 -m venv "$VENV"
  logged "$LOGS/venv.log" "$VENV/bin/pip" install "$torch" 'numpy~=2.2.6' 'transformers==4.57.6' \
    'sentencepiece>=0.1.98,<0.3.0' 'protobuf>=4.21.0,<5.0.0' tqdm pyyaml requests safetensors cmake ninja
  touch "$VENV/.glm5-compare-ready"
fi
export PATH=$VENV/bin:$PATH
PY=$VENV/bin/python3

# 3. llama.cpp from the sdist
LLAMA_SRC=$(ls -d "$LLAMA_ROOT"/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -n 1 || true)
if [[ -z $LLAMA_SRC ]]; then
  log "3a. extracting $LLAMA_SDIST into $LLAMA_ROOT"
  mkdir -p "$LLAMA_ROOT"
  tar -xzf "$LLAMA_SDIST" -C "$LLAMA_ROOT"
  LLAMA_SRC=$(ls -d "$LLAMA_ROOT"/llama_cpp_python-*/vendor/llama.cpp | head -n 1)
fi
if [[ ! -f $LLAMA_SRC/src/models/glm-dsa.cpp ]]; then
  echo "$LLAMA_SRC has no src/models/glm-dsa.cpp (GLM-DSA): a newer llama.cpp is needed" >&2
  exit 1
fi
# AMX (Sapphire Rapids and later): llama.cpp built with AMX does not run this model here. (a) It
# places the 3-D MLA weights blk.N.attn_k_b / attn_v_b in its AMX buffer (the load-time probe
# multiplies them by a contiguous tensor, which AMX's supports_op accepts), but GLM-DSA's graph
# multiplies them by permuted activations, which it rejects, and then no backend takes the node:
# GGML_ASSERT(*cur_backend_id != -1) in ggml_backend_sched_split_graph at the first context.
# (b) With 3-D weights kept out of AMX (the patch below), the first AMX matmul (blk.0.indexer
# attn_k, Q4_0) segfaults in ggml_backend_amx_mul_mat. So by default AMX is compiled out
# (-mno-amx-*: the x86 path llama.cpp takes on CPUs without AMX: AVX-512 with Q4_0 repacked
# 8x8 into its CPU_REPACK buffer). LLAMA_AMX=1 builds with AMX and the patch, to retry.
LLAMA_AMX=${LLAMA_AMX:-0}
LLAMA_BIN=$LLAMA_ROOT/build/bin
STAMP=$LLAMA_ROOT/build/glm5-compare-config
if [[ $LLAMA_AMX == 1 ]]; then
  AMX=$LLAMA_SRC/ggml/src/ggml-cpu/amx/amx.cpp
  if ! grep -q 'glm5 compare_llama_cpp.sh' "$AMX"; then
    log "3b. patching $AMX (3-D weights out of the AMX buffer type)"
    "$PY" - "$AMX" <<'PATCH'
import sys
p = sys.argv[1]
s = open(p).read()
anchor = "        if (!ggml_is_contiguous(src0) || !ggml_is_contiguous(src1)) {\n"
assert s.count(anchor) == 1, "amx.cpp changed: patch by hand"
s = s.replace(anchor, "        // glm5 compare_llama_cpp.sh: 3-D weights are used with permuted (non-contiguous) src1\n"
              "        if (ggml_n_dims(src0) > 2) {\n            return false;\n        }\n" + anchor)
open(p, "w").write(s)
PATCH
  fi
  ARCH_FLAGS=""
else
  ARCH_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
CONFIG="amx=$LLAMA_AMX"
if [[ ! -x $LLAMA_BIN/llama-bench || ! -x $LLAMA_BIN/llama-quantize || "$(cat "$STAMP" 2>/dev/null)" != "$CONFIG" ]]; then
  log "3c. building llama.cpp (llama-bench, llama-quantize; $CONFIG) in $LLAMA_ROOT/build"
  rm -f "$LLAMA_ROOT/build/CMakeCache.txt"
  logged "$LOGS/llama-cmake.log" cmake -S "$LLAMA_SRC" -B "$LLAMA_ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON "-DCMAKE_C_FLAGS=$ARCH_FLAGS" "-DCMAKE_CXX_FLAGS=$ARCH_FLAGS" -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF
  logged "$LOGS/llama-build.log" cmake --build "$LLAMA_ROOT/build" -j "$JOBS" --target llama-bench llama-quantize
  echo "$CONFIG" >"$STAMP"
fi

# 4. BF16 bench model
if [[ ! -f $WORK/bf16/model.safetensors ]]; then
  log "4. writing the BF16 bench model to $WORK/bf16"
  rm -rf "$WORK/bf16.part"
  logged "$LOGS/write-bf16.log" "$GLM5" bench --write-bf16 "$WORK/bf16.part"
  mv "$WORK/bf16.part" "$WORK/bf16"
fi

# 5. glm5 INT4 g32
if [[ ! -f $WORK/int4-g32/model.safetensors && ! -f $WORK/int4-g32/model.safetensors.index.json ]]; then
  log "5. glm5 quantize --group 32 -> $WORK/int4-g32"
  rm -rf "$WORK/int4-g32.part"
  logged "$LOGS/glm5-quantize.log" "$GLM5" quantize "$WORK/bf16" "$WORK/int4-g32.part" --group 32
  tail -n 2 "$LOGS/glm5-quantize.log"
  mv "$WORK/int4-g32.part" "$WORK/int4-g32"
fi

# 6. + 7. llama.cpp GGUF, BF16 then Q4_0
Q4=$WORK/model-q4_0.gguf
if [[ ! -f $Q4 ]]; then
  if [[ ! -f $WORK/model-bf16.gguf ]]; then
    log "6. convert_hf_to_gguf.py -> $WORK/model-bf16.gguf"
    "$PY" "$HERE/llama_cpp_convert.py" view "$WORK/bf16" "$WORK/hf-view"
    logged "$LOGS/convert.log" "$PY" "$HERE/llama_cpp_convert.py" convert "$LLAMA_SRC" "$WORK/hf-view" "$WORK/model-bf16.gguf.part"
    mv "$WORK/model-bf16.gguf.part" "$WORK/model-bf16.gguf"
  fi
  log "7. llama-quantize $LLAMA_QUANT_ARGS Q4_0 -> $Q4"
  # shellcheck disable=SC2086  # LLAMA_QUANT_ARGS is a list of arguments
  logged "$LOGS/llama-quantize.log" "$LLAMA_BIN/llama-quantize" $LLAMA_QUANT_ARGS "$WORK/model-bf16.gguf" "$Q4.part" Q4_0 "$THREADS"
  grep -E "model size|quant size" "$LOGS/llama-quantize.log" || true
  mv "$Q4.part" "$Q4"
  if [[ $KEEP_BF16_GGUF != 1 ]]; then rm -f "$WORK/model-bf16.gguf"; fi
fi

if [[ $PREPARE_ONLY == 1 ]]; then
  log "prepared: $WORK/int4-g32 and $Q4 (PREPARE_ONLY=1: no benchmark)"
  exit 0
fi

# 8. Benchmarks, alternating which engine goes first
run_llama() {
  local json=$LOGS/llama-round$1.json err=$LOGS/llama-round$1.log t0=$SECONDS
  log "round $1: llama-bench -t $THREADS -p $PROMPT -n $GEN -d $DEPTHS -r $REPS $LLAMA_BENCH_ARGS"
  # JSON on stdout; progress and a markdown table on stderr (the log).
  # shellcheck disable=SC2086  # LLAMA_BENCH_ARGS is a list of arguments
  if ! "$LLAMA_BIN/llama-bench" -m "$Q4" -t "$THREADS" -p "$PROMPT" -n "$GEN" -d "$DEPTHS" -r "$REPS" \
      $LLAMA_BENCH_ARGS -o json -oe md --progress >"$json.part" 2>"$err"; then
    tail -n 30 "$err" >&2
    echo "failed: llama-bench (log: $err)" >&2
    exit 1
  fi
  mv "$json.part" "$json"
  echo "  $((SECONDS - t0)) s (log: $err)"
}
run_glm5() {
  log "round $1: glm5 bench --preset glm5-bench --threads $THREADS --reps $REPS --decode $GEN --depths $DEPTHS"
  logged "$LOGS/glm5-round$1.log" "$GLM5" bench --preset glm5-bench --scratch "$WORK/int4-g32" --threads "$THREADS" \
    --reps "$REPS" --decode "$GEN" --depths "$DEPTHS" --json "$LOGS/glm5-round$1.json"
}
rm -f "$LOGS"/llama-round*.json "$LOGS"/glm5-round*.json
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2 == 1)); then run_llama "$r"; run_glm5 "$r"; else run_glm5 "$r"; run_llama "$r"; fi
done

{
  echo "glm5 $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') vs llama.cpp (${LLAMA_SRC#"$LLAMA_ROOT"/}); $(date -u +%Y-%m-%dT%H:%MZ); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads $THREADS, $ROUNDS rounds x $REPS reps"
  "$PY" "$HERE/compare_table.py" "$LOGS" "$PROMPT" "$GEN"
} | tee "$LOGS/table.md"
