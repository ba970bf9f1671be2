#!/usr/bin/env bash
# The bpfbroker tour, from a fresh Debian 12 machine to an unprivileged
# io_uring server using two broker-loaded BPF programs:
#
#   scripts/demo.sh        (as root; no sudo needed)
#
# It installs the build dependencies, builds into build/, runs bpfbrokerd on
# a throw-away policy root, approves two programs for user `nobody`, and runs
# examples/udp_server as nobody while datagrams arrive from an allowed and a
# disallowed source. It checks every number it prints and exits non-zero if
# anything is off, so CI can run it too. Everything it starts is stopped and
# the scratch root removed on exit, whatever happens.
#
# Environment: BPFBROKER_BUILD_DIR overrides the build directory (build/).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BPFBROKER_BUILD_DIR:-$repo/build}
nobody_uid=65534
nobody_gid=65534
per_source=3  # datagrams each source sends to each of the server's two ports

total_steps=12
current_step=0
step() {
  current_step=$((current_step + 1))
  printf '\n[%d/%d] %s\n' "$current_step" "$total_steps" "$1"
  shift
  local line
  for line in "$@"; do printf '      %s\n' "$line"; done
}
indent() { sed -u 's/^/    /'; }
die() {
  printf '\ndemo FAILED: %s\n' "$*" >&2
  exit 1
}
as_nobody() { setpriv --reuid="$nobody_uid" --regid="$nobody_gid" --clear-groups "$@"; }
# The system's python3 (Debian package), which any user can run; a python3
# earlier in root's PATH may live in a directory closed to others.
python=/usr/bin/python3

# ---- cleanup, on every exit path ---------------------------------------------
scratch=""
daemon_pid=""
daemon_log_pid=""
server_pid=""
server_log_pid=""
bus_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [[ -n $bus_pid ]]; then kill -TERM "$bus_pid" 2>/dev/null || true; fi
  # Let the log prefixers print the last lines before the shell goes.
  if [[ -n $server_log_pid ]]; then wait "$server_log_pid" 2>/dev/null || true; fi
  if [[ -n $daemon_log_pid ]]; then wait "$daemon_log_pid" 2>/dev/null || true; fi
  [[ -n $scratch && -d $scratch ]] && rm -rf -- "$scratch"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- preflight -----------------------------------------------------------------
[[ $(uname -s) == Linux ]] || die "bpfbroker needs Linux"
[[ $(id -u) -eq 0 ]] || die "run it as root (it installs packages and starts a root daemon): e.g. su -c $0, or as root: $0"
if [[ -r /proc/sys/kernel/io_uring_disabled && $(cat /proc/sys/kernel/io_uring_disabled) != 0 ]]; then
  die "io_uring is restricted here (sysctl kernel.io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled));" \
    "the demo's server runs as an unprivileged user and needs it: sysctl -w kernel.io_uring_disabled=0"
fi

scratch=$(mktemp -d -t bpfbroker-demo.XXXXXX)
chmod 0755 "$scratch"  # user nobody must reach the socket and the binaries in here
root=$scratch/root
bin=$scratch/bin
socket=$root/run/bpfbroker/org.bpfbroker.Broker

echo "bpfbroker demo: an unprivileged io_uring UDP server gets two BPF socket filters from bpfbrokerd."
echo "Source: $repo    build: $build    scratch: $scratch"

# ---- 1. dependencies -------------------------------------------------------------
step "Installing build dependencies" \
  "scripts/install-deps.sh installs the Debian packages that are missing (quietly; nothing when all are there)."
"$repo/scripts/install-deps.sh" 2>&1 | indent
echo "    dependencies are in place"
[[ -x $python ]] || die "$python is missing (scripts/install-deps.sh installs the python3 package)"

# ---- 2. build ----------------------------------------------------------------------
# Build as the owner of the checkout (or of an existing build/), not as root,
# so that a root run in a user's checkout leaves no root-owned files behind.
builder=()
owner_uid=$(stat -c %u "$build" 2>/dev/null || stat -c %u "$repo")
if [[ $owner_uid != 0 ]]; then
  owner_gid=$(stat -c %g "$build" 2>/dev/null || stat -c %g "$repo")
  if owner_entry=$(getent passwd "$owner_uid"); then
    builder=(setpriv --reuid="$owner_uid" --regid="$owner_gid" --init-groups
             env HOME="$(cut -d: -f6 <<<"$owner_entry")")
  else
    builder=(setpriv --reuid="$owner_uid" --regid="$owner_gid" --clear-groups)
  fi
fi
build_as=""
[[ ${#builder[@]} -gt 0 ]] && build_as=", as uid $owner_uid (the owner of the checkout)"
step "Building into ${build/#$repo\//}" \
  "cmake -S . -B build && cmake --build build -j$(nproc)$build_as; progress lines below."
if ! "${builder[@]}" cmake -S "$repo" -B "$build" >"$scratch/configure.log" 2>&1; then
  tail -n 30 "$scratch/configure.log" | indent
  die "cmake could not configure the build (the lines above are the end of its output)"
fi
echo "    configured"
set +e
"${builder[@]}" cmake --build "$build" -j"$(nproc)" 2>&1 | tee "$scratch/build.log" |
  grep --line-buffered -E '^\[ *[0-9]+%\] Built target' | indent
build_rc=${PIPESTATUS[0]}
set -e
if [[ $build_rc -ne 0 ]]; then
  grep -E -A5 'error|Error' "$scratch/build.log" | tail -n 40 | indent
  die "the build failed (the lines above are from its log)"
fi
bpfbrokerd=$build/brokerd/bpfbrokerd
bpfbrokerctl=$build/ctl/bpfbrokerctl
server=$build/examples/udp_server/bpfbroker-example-udp-server
for f in "$bpfbrokerd" "$bpfbrokerctl"; do
  [[ -x $f ]] || die "the build produced no $f"
done
[[ -x $server ]] || die "the build produced no $server: is add_subdirectory(examples) in $repo/CMakeLists.txt?"

# ---- 3. scratch root ---------------------------------------------------------------
step "Laying out a scratch policy root" \
  "scripts/make-demo-root.sh copies the built, dev-signed programs and the development public key" \
  "to where packages would install them (usr/lib/bpfbroker/...). Nothing outside $scratch is touched."
"$repo/scripts/make-demo-root.sh" "$root" "$build"
# Copies of the client binaries that user nobody can run wherever the
# checkout lives (a home directory is often closed to other users).
install -d -m 0755 "$bin"
install -m 0755 "$bpfbrokerctl" "$server" "$bin/"
ctl_as_nobody=$bin/$(basename "$bpfbrokerctl")
server_as_nobody=$bin/$(basename "$server")
(cd "$root" && find usr/lib/bpfbroker -type f | sort) | indent

# ---- 4. daemon ------------------------------------------------------------------------
step "Starting a private system bus and bpfbrokerd (root) in the background" \
  "A dbus-daemon of the system type with bpfbroker's own bus policy stands in for the system bus." \
  "bpfbrokerd verifies each program's signature and object hash, serves $socket" \
  "and org.bpfbroker.Broker1 on that bus. Its output has a [daemon] prefix; audit records also go to $scratch/audit.log."
sed "s|@BUS_SOCKET@|$scratch/bus|; s|@PROJECT_POLICY@|$repo/systemd/org.bpfbroker.Broker1.conf|" \
  "$repo/tests/dbus/system-bus.conf.in" >"$scratch/bus.conf"
dbus-daemon --config-file="$scratch/bus.conf" --nofork --nopidfile >/dev/null 2>&1 &
bus_pid=$!
for _ in $(seq 100); do [[ -S $scratch/bus ]] && break; sleep 0.05; done
[[ -S $scratch/bus ]] || die "dbus-daemon did not start"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$scratch/bus"
exec {daemon_out}> >(sed -u 's/^/    [daemon] /')
daemon_log_pid=$!
"$bpfbrokerd" --root "$root" --foreground --audit-log "$scratch/audit.log" >&"$daemon_out" 2>&1 &
daemon_pid=$!
exec {daemon_out}>&-
for _ in $(seq 100); do
  [[ -S $socket ]] && break
  kill -0 "$daemon_pid" 2>/dev/null || { wait "$daemon_pid" || true; die "bpfbrokerd exited during start-up"; }
  sleep 0.1
done
[[ -S $socket ]] || die "bpfbrokerd did not create $socket within 10 s"

# ---- 5. approvals ---------------------------------------------------------------------
step "Approving udp_stats and src_allow for user nobody" \
  "An administrator's grant, bound to each program's current manifest hash (var/lib/bpfbroker/approvals.json)."
for program in udp_stats src_allow; do
  "$bpfbrokerctl" --root "$root" approve "$program" --user nobody 2>&1 | indent
done

# ---- 6. what nobody may use --------------------------------------------------------------
step "Listing the catalog as user nobody (uid $nobody_uid)" \
  "The daemon takes the caller's identity from the socket (SO_PEERCRED); the other programs stay denied."
as_nobody "$ctl_as_nobody" --root "$root" list 2>&1 | indent

# ---- 7. the example server ---------------------------------------------------------------
expected_total=$((per_source + 2 * per_source))  # guarded: allowed source only; counted: both sources
step "Starting the example server as user nobody" \
  "examples/udp_server acquires src_allow and udp_stats, attaches each through its own io_uring to one of" \
  "its two sockets (a socket holds one filter), allows 127.0.0.1/32 and ::1/128 on the guarded one, and" \
  "stops after $expected_total datagrams. Its output has a [server] prefix."
exec {server_err}> >(tee "$scratch/server.log" | sed -u 's/^/    [server] /')
server_log_pid=$!
as_nobody "$server_as_nobody" --socket "$socket" --allow 127.0.0.1/32 --allow ::1/128 \
  --count "$expected_total" --seconds 30 --json >"$scratch/server.json" 2>&"$server_err" &
server_pid=$!
exec {server_err}>&-
ports=""
for _ in $(seq 100); do
  ports=$(grep -o 'ports: guarded=[0-9]* counted=[0-9]*' "$scratch/server.log" || true)
  [[ -n $ports ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $ports ]]; then
  server_rc=0
  wait "$server_pid" || server_rc=$?
  server_pid=""
  die "the example server did not start (exit status $server_rc; its messages are above)"
fi
guarded_port=$(sed -E 's/.*guarded=([0-9]+).*/\1/' <<<"$ports")
counted_port=$(sed -E 's/.*counted=([0-9]+).*/\1/' <<<"$ports")

# ---- 8. traffic --------------------------------------------------------------------------
step "Sending datagrams from a disallowed and an allowed source" \
  "$per_source from 127.0.0.2 (not in the allow-list), then $per_source from 127.0.0.1, to each port." \
  "All of 127.0.0.0/8 is local on Linux, so binding the sender to 127.0.0.2 needs no set-up."
# Loopback delivery is synchronous: each sendto() has run the receiving
# socket's filter before it returns, so the disallowed datagrams are judged
# before the allowed ones are sent. The plan is printed first so that the
# server's receipts ([server] lines, printed as they arrive) follow it.
for source in 127.0.0.2 127.0.0.1; do
  note=""
  [[ $source == 127.0.0.1 ]] || note=" (src_allow should drop these)"
  echo "    sending $per_source datagrams from $source to the guarded port $guarded_port$note"
  echo "    sending $per_source datagrams from $source to the counted port $counted_port"
done
as_nobody "$python" - "$guarded_port" "$counted_port" "$per_source" >"$scratch/sent.json" 2>"$scratch/sender.log" <<'EOF' ||
import json, socket, sys
guarded, counted, n = (int(a) for a in sys.argv[1:4])
sent = {"guarded": {}, "counted": {}}
for source in ("127.0.0.2", "127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        for role, port in (("guarded", guarded), ("counted", counted)):
            entry = sent[role].setdefault(source, {"datagrams": 0, "bytes": 0})
            for i in range(1, n + 1):
                payload = f"datagram {i} of {n} from {source} to the {role} port".encode()
                s.sendto(payload, ("127.0.0.1", port))
                entry["datagrams"] += 1
                entry["bytes"] += len(payload)
json.dump(sent, sys.stdout)
EOF
  { indent <"$scratch/sender.log"; die "could not send the datagrams"; }
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=""
wait "$server_log_pid" 2>/dev/null || true
server_log_pid=""
[[ $server_rc -eq 0 ]] || die "the example server exited with status $server_rc"

# ---- 9. check -------------------------------------------------------------------------------
step "Checking what the server received and what udp_stats counted" \
  "The counters come from the kernel, read by the server through the read-only map fd the broker gave it."
"$python" - "$scratch/server.json" "$scratch/sent.json" <<'EOF' || die "the server's numbers are not what was sent (see above)"
import json, sys
got = json.load(open(sys.argv[1]))
sent = json.load(open(sys.argv[2]))
failures = 0

def check(ok, text):
    global failures
    print(f"    {'ok  ' if ok else 'FAIL'}  {text}")
    failures += not ok

def summary(sources):
    return ", ".join(f"{n} from {a}" for a, n in sorted(sources.items())) or "nothing"

g, c, stats = got["guarded"], got["counted"], got["udp_stats"]
allowed = "127.0.0.1"
sent_g = {a: v["datagrams"] for a, v in sent["guarded"].items()}
sent_c = {a: v["datagrams"] for a, v in sent["counted"].items()}
bytes_c = sum(v["bytes"] for v in sent["counted"].values())

print(f"    guarded socket, port {g['port']}, src_allow attached via {g['attach_path']}, allow-list {' '.join(got['allow'])}")
print(f"      sent: {summary(sent_g)}")
print(f"      received by the server: {summary(g['sources'])}")
check(g["sources"] == {allowed: sent_g[allowed]},
      "only the allowed source got through; the kernel dropped the disallowed datagrams before they were queued")
print(f"    counted socket, port {c['port']}, udp_stats attached via {c['attach_path']}")
print(f"      sent: {summary(sent_c)} ({bytes_c} payload bytes)")
print(f"      received by the server: {summary(c['sources'])} ({c['bytes']} bytes)")
print(f"      udp_stats counters (stats map, key 0): packets={stats['packets']} bytes={stats['bytes']}")
check(c["sources"] == sent_c and c["bytes"] == bytes_c, "the server received every datagram sent to the counted socket")
check(stats["packets"] == c["received"] and stats["bytes"] == c["bytes"],
      "udp_stats counted exactly what the server received there")
check(got["stats_map_read_only"], "the stats map fd is read-only: the kernel refused the server's write")
sys.exit(1 if failures else 0)
EOF

# ---- 10. audit -------------------------------------------------------------------------------
step "The audit trail" \
  "Every decision bpfbrokerd made, with who asked and why it was allowed (or denied)."
grep '^audit:' "$scratch/audit.log" | indent || die "no audit records in $scratch/audit.log"
for program in src_allow udp_stats; do
  grep -q "action=acquire .*program=$program uid=$nobody_uid .*decision=allow" "$scratch/audit.log" ||
    die "the audit log has no record of uid $nobody_uid acquiring $program"
done

# ---- 11. D-Bus ----------------------------------------------------------------------------------
step "The same program over D-Bus, as user nobody" \
  "bpfbrokerctl --bus system calls org.bpfbroker.Broker1.AcquireProgram; the fds arrive as D-Bus 'h' values." \
  "The daemon identifies the caller by the uid the bus recorded, and audits it with transport=dbus."
as_nobody "$ctl_as_nobody" --bus system acquire udp_stats 2>&1 | indent ||
  die "acquiring udp_stats over D-Bus failed"
grep -q "action=acquire transport=dbus program=udp_stats uid=$nobody_uid .*decision=allow" "$scratch/audit.log" ||
  die "the audit log has no D-Bus acquire by uid $nobody_uid"
echo "    and a program nobody was not approved for:"
if as_nobody "$ctl_as_nobody" --bus system acquire drop_small >"$scratch/denied.txt" 2>&1; then
  die "drop_small was handed out over D-Bus without a grant"
fi
indent <"$scratch/denied.txt"

# ---- 12. stop ----------------------------------------------------------------------------------
step "Stopping bpfbrokerd and the bus, and removing the scratch root" \
  "bpfbrokerd stops on SIGTERM and removes its socket; then the scratch directory is deleted."
kill -TERM "$daemon_pid"
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
daemon_pid=""
wait "$daemon_log_pid" 2>/dev/null || true
daemon_log_pid=""
[[ $daemon_rc -eq 0 ]] || die "bpfbrokerd exited with status $daemon_rc"
kill -TERM "$bus_pid" 2>/dev/null || true
wait "$bus_pid" 2>/dev/null || true
bus_pid=""
rm -rf -- "$scratch"
scratch=""
echo "    removed"

echo
echo "Demo passed. Next: examples/udp_server/README.md explains the server; bpfbrokerctl --help lists the admin commands."
