#!/usr/bin/env bash
# cmake --install with a prefix other than /usr (the default /usr/local)
# says plainly that dbus, polkit, systemd and tmpfiles will not see the
# files it put there; with /usr it installs them where they look, silently.
set -euo pipefail
: "${BUILD_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/bpfbroker-prefix-XXXXXX)
trap 'rm -rf "$work"' EXIT

# CMake wraps warnings: compare with the whitespace folded.
out=$(cmake --install "$BUILD_DIR" --prefix "$work/local" 2>&1 | tr -s ' \n' '  ')
[[ $out == *"the system does not see the units"* ]] ||
  fail "no warning for prefix $work/local:"$'\n'"$out"
[[ -f $work/local/share/polkit-1/actions/org.bpfbroker.policy ]] || fail "the polkit actions are not under the prefix"

out=$(DESTDIR="$work/staged" cmake --install "$BUILD_DIR" --prefix /usr 2>&1)
[[ $out != *"the system does not"* ]] || fail "a warning for prefix /usr:"$'\n'"$out"
[[ -f $work/staged/usr/share/polkit-1/actions/org.bpfbroker.policy ]] || fail "the polkit actions are not in /usr/share"
echo "PASS"
