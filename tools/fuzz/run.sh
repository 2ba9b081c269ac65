#!/usr/bin/env bash
# Runs each fuzz target (Sources/GLM5Fuzz) under libFuzzer for FUZZ_SECONDS and prints its
# executions and coverage; called by `make fuzz` with the driver built (.build/fuzz/debug/glm5-fuzz).
#
#   FUZZ_SECONDS   per target (default 120)      FUZZ_TARGETS  names (default: all)
#   FUZZ_RSS_MB    -rss_limit_mb (default 2048)  FUZZ_FLAGS    more libFuzzer flags
#
# New inputs go to .build/fuzz/corpus/<target>/ (the committed seeds in Tests/fuzz/<target>/ are
# read, never written); a crash, hang (-timeout=1: over a second per input), leak or out-of-memory
# lands in .build/fuzz/artifacts/ and fails the run. A fixed one belongs in Tests/fuzz/<target>/.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${FUZZ_BIN:-.build/fuzz/debug/glm5-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-120}
RSS=${FUZZ_RSS_MB:-2048}
TARGETS=${FUZZ_TARGETS:-$(ls -d Tests/fuzz/*/ | xargs -n1 basename | tr '\n' ' ')}
mkdir -p .build/fuzz/artifacts .build/fuzz/logs
failed=""
summary=""
for t in $TARGETS; do
  [ -d "Tests/fuzz/$t" ] || { echo "no corpus Tests/fuzz/$t"; exit 2; }
  mkdir -p ".build/fuzz/corpus/$t"
  dict=""; [ -f "Tests/fuzz/$t.dict" ] && dict="-dict=Tests/fuzz/$t.dict"
  log=".build/fuzz/logs/$t.log"
  echo "== $t: ${SECONDS_EACH}s"
  # LSan finds leaks at exit and, with -detect_leaks=1, after inputs that grew the heap.
  GLM5_FUZZ_TARGET=$t ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    "$BIN" -max_total_time="$SECONDS_EACH" -timeout=1 -rss_limit_mb="$RSS" -detect_leaks=1 \
    -print_final_stats=1 -artifact_prefix=".build/fuzz/artifacts/$t-" $dict ${FUZZ_FLAGS:-} \
    ".build/fuzz/corpus/$t" "Tests/fuzz/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  line="$t: ${runs:-?} executions in ${secs:-?} s, ${cov:-no coverage line}, peak RSS ${rss:-?} MB"
  if [ $rc -ne 0 ]; then
    line="$line: FAILED (exit $rc; see $log)"
    failed="$failed $t"
    grep -m3 -E 'ERROR|SUMMARY|Test unit written' "$log" | sed 's/^/    /'
  fi
  echo "$line"
  summary="$summary$line"$'\n'
done
echo
echo "fuzz summary:"
printf '%s' "$summary"
if [ -n "$failed" ]; then echo "failed:$failed"; exit 1; fi
