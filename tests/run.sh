#!/usr/bin/env bash
# The test command: installs what is missing (Debian 12), builds with
# warnings as errors, and runs every test (unit and integration).
#
#   tests/run.sh              plain build in build/
#   tests/run.sh --sanitize   ASan + UBSan (leaks checked) in build-sanitize/
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
options=(-Dwerror=true)
case "${1:-}" in
  "") ;;
  --sanitize)
    build=build-sanitize
    options+=(-Db_sanitize=address,undefined -Db_lundef=false)
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    export HCONN_SANITIZED=1   # tests skip what sanitizers distort (RSS)
    ;;
  *) echo "usage: tests/run.sh [--sanitize]" >&2; exit 2 ;;
esac

bash .ci/install-deps.sh
# Every peer the integration tests start is installed above: a missing one
# is an error here, not a skip.
export HCONN_REQUIRE_PEERS=1
if [ -d "$build/meson-private" ]; then
  meson setup --reconfigure "$build" "${options[@]}" >/dev/null
else
  meson setup "$build" "${options[@]}"
fi
meson compile -C "$build"
meson test -C "$build" --print-errorlogs --num-processes 2 \
  || { tail -n 200 "$build/meson-logs/testlog.txt" >&2; exit 1; }
