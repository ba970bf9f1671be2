#!/usr/bin/env bash
# Socket activation as systemd does it, without systemd as PID 1:
# systemd-socket-activate listens, starts bpfbrokerd on the first connection
# with the socket in LISTEN_FDS, and NOTIFY_SOCKET receives READY=1. The
# daemon must serve on the socket it was given, not create its own.
set -euo pipefail
: "${BPFBROKERD:?}" "${BPFBROKERCTL:?}" "${BUILD_DIR:?}" "${SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-socket-activate >/dev/null || { echo "systemd-socket-activate missing (package systemd)"; exit 77; }

dir=$(mktemp -d /tmp/bpfbroker-activation-XXXXXX)
chmod 0755 "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

"$SOURCE_DIR/scripts/make-demo-root.sh" "$dir/root" "$BUILD_DIR"

# The notify socket: record the first datagram that arrives.
python3 - "$dir/notify" "$dir/notified" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
try:
    msg = s.recv(4096).decode()
except socket.timeout:
    msg = "TIMEOUT"
open(sys.argv[2], "w").write(msg)
PY
pids+=($!)
for _ in $(seq 100); do [[ -S "$dir/notify" ]] && break; sleep 0.05; done

systemd-socket-activate -l "$dir/listen.sock" -E NOTIFY_SOCKET="$dir/notify" \
  "$BPFBROKERD" --root "$dir/root" --foreground --no-dbus 2>"$dir/daemon.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S "$dir/listen.sock" ]] && break; sleep 0.05; done
[[ -S "$dir/listen.sock" ]] || fail "systemd-socket-activate did not listen"

# The first connection starts the daemon, which must answer it.
out=$("$BPFBROKERCTL" --socket "$dir/listen.sock" --json status) || fail "status over the activated socket: $out"
[[ "$out" == *'"running": true'* ]] || fail "status: $out"

for _ in $(seq 100); do [[ -s "$dir/notified" ]] && break; sleep 0.1; done
notified=$(cat "$dir/notified" 2>/dev/null || true)
[[ "$notified" == *READY=1* ]] || fail "no READY=1 on NOTIFY_SOCKET (got: '$notified'); daemon log: $(cat "$dir/daemon.log")"
[[ ! -e "$dir/root/run/bpfbroker/org.bpfbroker.Broker" ]] || fail "the daemon made its own socket instead of using LISTEN_FDS"
grep -q "serving on" "$dir/daemon.log" || fail "daemon log: $(cat "$dir/daemon.log")"
echo "ok: socket-activated bpfbrokerd served the passed socket and sent READY=1"
