#!/usr/bin/env bash
# `cmake --install` puts every file where Debian expects it; the installed
# units verify with systemd-analyze; the bus policy loads in a real
# dbus-daemon; a program outside the tree builds against the installed
# client library with pkg-config and with find_package, and runs.
set -euo pipefail
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }

dest=$(mktemp -d /tmp/bpfbroker-install-XXXXXX)
bus_pid=
cleanup() { [[ -n "$bus_pid" ]] && kill "$bus_pid" 2>/dev/null; rm -rf "$dest"; }
trap cleanup EXIT
DESTDIR="$dest" cmake --install "$BUILD_DIR" --prefix /usr >/dev/null

for f in usr/sbin/bpfbrokerd usr/bin/bpfbrokerctl \
         usr/lib/systemd/system/bpfbrokerd.service usr/lib/systemd/system/bpfbrokerd.socket \
         usr/share/dbus-1/system.d/org.bpfbroker.Broker1.conf \
         usr/share/dbus-1/system-services/org.bpfbroker.Broker1.service \
         usr/share/dbus-1/interfaces/org.bpfbroker.Broker1.xml \
         usr/share/polkit-1/actions/org.bpfbroker.policy \
         usr/lib/tmpfiles.d/bpfbroker.conf \
         usr/lib/systemd/catalog/bpfbroker.catalog \
         usr/include/bpfbroker/client.h; do
  [[ -e "$dest/$f" ]] || fail "not installed: /$f"
done
[[ -d "$dest/usr/lib/bpfbroker/programs.d" ]] || fail "vendor programs.d not created"
# journalctl accepts the catalog and knows both audit MESSAGE_IDs.
mkdir -p "$dest/var/lib/systemd/catalog"
journalctl --root="$dest" --update-catalog || fail "journalctl --update-catalog refused bpfbroker.catalog"
for id in 5a7803f0a3a34a6096babfcfb590a200 6db43a06209a4076a913511d4b0b98ec; do
  journalctl --root="$dest" --list-catalog | grep -q "^$id " || fail "the journal catalog has no entry $id"
done
# lib/ or lib/<multiarch>/, as GNUInstallDirs chose for the configured prefix.
so=$(find "$dest/usr/lib" -name 'libbpfbroker.so.0' | head -n 1)
[[ -n "$so" ]] || fail "libbpfbroker.so.0 not installed"
libdir=$(dirname "$so")
for f in pkgconfig/bpfbroker.pc cmake/bpfbroker/bpfbrokerConfig.cmake; do
  [[ -e "$libdir/$f" ]] || fail "not installed: $libdir/$f"
done

# The installed units verify on this host, with ExecStart pointed at the
# installed binary (a --root tree would lack sysinit.target and /bin/kill).
units="$dest/units"
mkdir "$units"
sed "s|^ExecStart=/usr/sbin/bpfbrokerd|ExecStart=$dest/usr/sbin/bpfbrokerd|" \
  "$dest/usr/lib/systemd/system/bpfbrokerd.service" >"$units/bpfbrokerd.service"
cp "$dest/usr/lib/systemd/system/bpfbrokerd.socket" "$units/"
systemd-analyze verify "$units/bpfbrokerd.service" "$units/bpfbrokerd.socket" || fail "systemd-analyze verify"
# Audit records must not meet journald's rate limit (see the unit).
grep -qx 'LogRateLimitIntervalSec=0' "$units/bpfbrokerd.service" ||
  fail "bpfbrokerd.service leaves journald's rate limit on: a caller's flood could drop audit records"
score=$(systemd-analyze security --offline=yes "$units/bpfbrokerd.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for bpfbrokerd.service: \([0-9.]*\).*/\1/p')
[[ -n "$score" ]] || fail "no security score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is worse than 2.0"
echo "exposure level of bpfbrokerd.service: $score"

# The bus policy loads in the real dbus-daemon.
sed "s|@BUS_SOCKET@|$dest/bus|; s|@PROJECT_POLICY@|$dest/usr/share/dbus-1/system.d/org.bpfbroker.Broker1.conf|" \
  "$SOURCE_DIR/tests/dbus/system-bus.conf.in" >"$dest/bus.conf"
dbus-daemon --config-file="$dest/bus.conf" --print-pid --fork >"$dest/bus.pid" || fail "dbus-daemon rejects the policy"
bus_pid=$(cat "$dest/bus.pid")

# pkg-config: the .pc names the prefix configured at build time; point it
# at the staging tree instead.
cflags_libs=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --define-variable=prefix="$dest/usr" \
              --cflags --libs bpfbroker) || fail "pkg-config bpfbroker"
# shellcheck disable=SC2086
g++ -std=c++20 "$SOURCE_DIR/tests/install/consumer/main.cpp" -o "$dest/consumer-pc" $cflags_libs ||
  fail "pkg-config build"
LD_LIBRARY_PATH="$libdir" "$dest/consumer-pc" || fail "pkg-config consumer did not run"

# find_package(bpfbroker) -> bpfbroker::client
cmake -S "$SOURCE_DIR/tests/install/consumer" -B "$dest/consumer-build" -DCMAKE_PREFIX_PATH="$dest/usr" \
  >/dev/null || fail "find_package(bpfbroker)"
cmake --build "$dest/consumer-build" >/dev/null || fail "find_package consumer build"
LD_LIBRARY_PATH="$libdir" "$dest/consumer-build/consumer" || fail "find_package consumer did not run"
echo "ok: installed layout, units, bus policy, pkg-config and find_package consumers"
