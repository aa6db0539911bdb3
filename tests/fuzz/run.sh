#!/usr/bin/env bash
# Fuzzing: builds the libFuzzer targets with clang (ASan + UBSan) in
# build-fuzz/ and runs each for SECONDS (default 20) on a temporary copy
# of its seed corpus, so tests/fuzz/corpus/ is never modified. Fails if
# any target crashes, leaks, times out or runs out of memory; the input
# that did it is kept in build-fuzz/fuzz-artifacts/.
#
#   tests/fuzz/run.sh [SECONDS]
#
# Installs nothing: needs clang and libclang-rt-14-dev (libFuzzer), meson,
# and what -Dtests=true needs (cmocka), as tests/run.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]] || [ $# -gt 1 ]; then
  echo "usage: tests/fuzz/run.sh [SECONDS]" >&2
  exit 2
fi
if ! command -v clang >/dev/null; then
  echo "tests/fuzz/run.sh: clang not found (apt-get install clang" \
       "libclang-rt-14-dev)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hconn-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# clang without its runtime (libclang-rt-14-dev is only recommended)
# cannot link a fuzzer: say so before meson fails at the first link.
probe='int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }'
if ! echo "$probe" |
    clang -w -fsanitize=fuzzer,address,undefined -x c - -o "$tmp/probe" \
      2>/dev/null; then
  echo "tests/fuzz/run.sh: clang cannot link a libFuzzer target" \
       "(apt-get install libclang-rt-14-dev)" >&2
  exit 1
fi

build=build-fuzz
targets=(wire http1 chunked request wire-fast)
if [ -d "$build/meson-private" ]; then
  meson setup --reconfigure "$build" -Dfuzz=true -Dtests=true \
    -Dwerror=true >/dev/null
else
  CC=clang meson setup "$build" -Dfuzz=true -Dtests=true -Dwerror=true \
    >/dev/null
fi
meson compile -C "$build" fuzz

artifacts=$build/fuzz-artifacts
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=()
for t in "${targets[@]}"; do
  work=$tmp/$t
  mkdir -p "$work/corpus" "$work/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
  seeds=$(find "$work/corpus" -type f | wc -l)
  args=(-max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$work/artifacts/")
  if [ -f "tests/fuzz/$t.dict" ]; then
    args+=(-dict="tests/fuzz/$t.dict")
  fi
  rc=0
  "$build/tests/fuzz/fuzz-$t" "${args[@]}" "$work/corpus" \
    >"$work/log" 2>&1 || rc=$?

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  cov=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE)' \
        "$work/log" | tail -n 1 | sed 's/[[:space:]]\+/ /g' || true)
  corpus=$(find "$work/corpus" -type f | wc -l)
  printf 'fuzz-%-8s %s  executions: %s  corpus: %s -> %s files\n' \
    "$t" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")" \
    "${execs:-?}" "$seeds" "$corpus"
  printf '  %s\n' "${cov:-no coverage line}"
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    mkdir -p "$artifacts"
    for a in "$work"/artifacts/*; do
      [ -e "$a" ] || continue
      cp "$a" "$artifacts/fuzz-$t-$(basename "$a")"
      echo "  input kept: $artifacts/fuzz-$t-$(basename "$a")" \
           "(replay: $build/tests/fuzz/fuzz-$t FILE)"
    done
    echo "---- fuzz-$t log (tail) ----" >&2
    tail -n 60 "$work/log" >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
