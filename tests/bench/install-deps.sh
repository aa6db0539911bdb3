#!/usr/bin/env bash
# Installs what tests/bench/bench.py needs on Debian 12: the build and test
# packages of .ci/packages, then the benchmark's own peers and tools
# (tests/bench/packages). Does nothing when all are present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../../.ci/install-deps.sh"
bash "$here/../../.ci/install-deps.sh" "$here/packages"
