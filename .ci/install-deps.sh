#!/usr/bin/env bash
# Installs the Debian packages listed in a packages file (default:
# .ci/packages; one per line, # comments) that are missing. Does nothing
# when all are present, so the test and demo commands can call it every
# time.
#
#   .ci/install-deps.sh [PACKAGES-FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list=${1:-$here/packages}
mapfile -t wanted < <(grep -v -e '^#' -e '^$' "$list")
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing: ${missing[*]}"
# nginx's and squid's packages would start system services on ports 80
# and 3128; the tests and benchmarks run their own on loopback, so keep
# package scripts from starting services.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${missing[@]}"
[ -z "$made_policy" ] || $sudo rm -f "$policy"
