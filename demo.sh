#!/usr/bin/env bash
# The run command: installs what is missing, builds, starts hconnd on its
# default socket with no config, serves a demo page on a free loopback
# port, and fetches it through the daemon twice (the second time over the
# pooled connection) with the hconn command and once with socat.
# hconnd then keeps running in the foreground until Ctrl-C;
# with --once it stops after the demo.
set -euo pipefail
cd "$(dirname "$0")"
once=
[ "${1:-}" = --once ] && once=1

bash .ci/install-deps.sh
[ -d build/meson-private ] || meson setup build
meson compile -C build

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The socket hconnd and hconn agree on without being told: the system
# path for root, $XDG_RUNTIME_DIR/hconnd.sock for a user.
socket=$(build/daemon/hconnd --help | sed -n 's/.*(default: \(.*\)).*/\1/p')

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '<h1>Hello from the demo origin</h1>\n' > "$work/index.html"
# Python's file server, switched to HTTP/1.1 so its connections can be
# kept alive and pooled.
python3 -c '
import functools, http.server as h, sys
h.SimpleHTTPRequestHandler.protocol_version = "HTTP/1.1"
handler = functools.partial(h.SimpleHTTPRequestHandler, directory=sys.argv[2])
h.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
' "$port" "$work" >"$work/origin.log" 2>&1 &
pids+=($!)

build/daemon/hconnd -v &
pids+=($!)
for _ in $(seq 100); do
  [ -S "$socket" ] && python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$socket" 2>/dev/null && break
  sleep 0.1
done
for _ in $(seq 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null && break
  sleep 0.1
done

url="http://127.0.0.1:$port/index.html"
echo "== hconn -v $url (new connection)"
build/client-lib/hconn -v "$url"
echo "== again (the pooled connection is reused)"
build/client-lib/hconn -v "$url" 2>"$work/second.err"
cat "$work/second.err" >&2
grep -q 'reused pooled connection' "$work/second.err" ||
  { echo "demo: the second request did not reuse the pooled connection" >&2; exit 1; }
echo "== the same through socat, in raw mode"
printf '%s\n' "{\"method\":\"GET\",\"url\":\"$url\",\"raw\":true}" |
  socat - UNIX-CONNECT:"$socket" | tail -n +2

if [ -n "$once" ]; then
  echo "demo done"
  exit 0
fi
echo "== hconnd is listening on $socket; Ctrl-C stops it"
wait "${pids[1]}"
