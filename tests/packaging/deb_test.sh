#!/usr/bin/env bash
# The Debian packages end to end (issue 12 item 1): builds them from a copy
# of the checkout with dpkg-buildpackage and a signing key given the way a
# distribution would (BPFBROKER_SIGNING_KEY), runs lintian, checks that the
# BPF objects are the same when built from another path, installs the four
# packages, starts /usr/sbin/bpfbrokerd --foreground by hand (no systemd as
# PID 1 here), checks that a member of group bpfbroker acquires udp_stats
# and a non-member is refused (uid 65534 children, with and without the
# group), builds examples/program_package with the installed kit, then
# purges and checks that no file is left behind.
#
# Run as root by scripts/test.sh after ctest. Packages left installed by an
# earlier run are purged first. Environment: KEEP_DEB_DIR=DIR copies the
# built .deb files there.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
packages=(bpfbroker libbpfbroker0 libbpfbroker-dev bpfbroker-programs)
fail() { echo "deb_test FAILED: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: the package test installs packages: run it as root"; exit 77; }

# A fixed scratch path, so that ccache serves a re-run (the paths are part
# of each compile); a run removes what an interrupted one left there.
work=/var/tmp/bpfbroker-deb-test
rm -rf -- "$work"
mkdir -m 0755 "$work"
daemon_pid=""
installed_by_us=0
cleanup() {
  local rc=$?
  trap - EXIT
  if [[ -n $daemon_pid ]]; then kill -TERM "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  if [[ $installed_by_us == 1 ]]; then dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true; fi
  rm -rf -- "$work"
  exit "$rc"
}
trap cleanup EXIT

installed() { dpkg-query -W -f='${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null | grep -q '^.i'; }

# Every path outside the volatile and per-run places, to compare after purge.
listing() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
    -o -path /work -o -path /var/cache -o -path /var/log -o -path /var/lib/dpkg -o -path /var/lib/apt \
    -o -path /root -o -path /var/lib/systemd/catalog \) -prune -o -print | sort
}

# A copy of the checkout (tracked and new files, not build trees) at `dir`.
copy_checkout() {  # dir
  mkdir -p "$1"
  (cd "$repo" && git ls-files -co --exclude-standard | grep -v -e '^build' -e '^debian/build/' |
     tar -cf - --no-recursion -T -) | tar -xf - -C "$1"
}

step "Purging bpfbroker packages left by an earlier run"
if installed; then dpkg --purge "${packages[@]}"; else echo "none installed"; fi
getent group bpfbroker >/dev/null && fail "group bpfbroker exists without the package (made by hand?)"
before=$work/before.txt
listing >"$before"

step "Building the packages (dpkg-buildpackage -us -uc -b) from a copy in $work/a/bpfbroker"
openssl genpkey -algorithm ed25519 -out "$work/vendor.key" 2>/dev/null
copy_checkout "$work/a/bpfbroker"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(env CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR="$work/a/bpfbroker")
fi
if ! (cd "$work/a/bpfbroker" && "${launcher[@]}" env BPFBROKER_SIGNING_KEY="$work/vendor.key" \
        dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"
  fail "dpkg-buildpackage failed (the end of its log is above)"
fi
grep -q "LOCAL USE ONLY" "$work/build.log" && fail "the build warned of a local key although BPFBROKER_SIGNING_KEY was set"
debs=()
for p in "${packages[@]}"; do
  f=$(ls "$work/a/${p}_"*.deb 2>/dev/null | head -n 1)
  [[ -n $f ]] || fail "no package $p was built"
  debs+=("$f")
done
ls -l "${debs[@]}"
[[ -n ${KEEP_DEB_DIR:-} ]] && cp "${debs[@]}" "$KEEP_DEB_DIR/"

step "lintian"
# lintian leaves its ELF caches (mldbm-elf-*) in TMPDIR: kept in $work, which goes.
mkdir -p "$work/lintian-tmp"
TMPDIR="$work/lintian-tmp" lintian --fail-on error "$work"/a/bpfbroker_*.changes || fail "lintian reports errors"

step "The BPF objects are the same when the tree is built from another path"
dpkg-deb -x "$work"/a/bpfbroker-programs_*.deb "$work/extracted"
copy_checkout "$work/second/elsewhere/bpfbroker"
cmake -S "$work/second/elsewhere/bpfbroker" -B "$work/second/b" -DBPFBROKER_TESTS=OFF -DBPFBROKER_BENCH=OFF >/dev/null
cmake --build "$work/second/b" --target bpfbroker_programs >/dev/null
(cd "$work/extracted/usr/lib/bpfbroker/programs.d" && sha256sum */*.bpf.o) >"$work/packaged.sha"
(cd "$work/second/b/programs" && sha256sum */*.bpf.o) >"$work/second.sha"
diff "$work/packaged.sha" "$work/second.sha" || fail "the objects differ between the two checkouts"
cat "$work/packaged.sha"

step "Installing the four packages"
installed_by_us=1
dpkg -i "${debs[@]}"
gid=$(getent group bpfbroker | cut -d: -f3) || fail "postinst made no group bpfbroker"
key_id=$(openssl pkey -in "$work/vendor.key" -pubout -outform DER | sha256sum | cut -d' ' -f1)
grep -q "\"signer\": \"$key_id\"" /usr/lib/bpfbroker/allowlist.d/bpfbroker-programs.json ||
  fail "the shipped allow-list does not name the build's signing key"
/usr/bin/bpfbrokerctl catalog
# Every program of the tree's programs/ folder, not a list written here
# that a new program would silently outgrow.
shipped=$(cd "$repo/programs" && python3 -c 'import glob; print(sorted(p.split("/")[0] for p in glob.glob("*/manifest.json")))')
[[ $(/usr/bin/bpfbrokerctl catalog --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted(p["name"] for p in d["programs"] if p["state"] == "valid"))') \
   == "$shipped" ]] || fail "not every shipped program is valid (expected $shipped)"

step "The packager's kit of libbpfbroker-dev builds examples/program_package"
KIT_PREFIX=/usr BPFBROKERCTL=/usr/bin/bpfbrokerctl SOURCE_DIR="$work/a/bpfbroker" \
  bash "$repo/tests/packaging/kit_test.sh" || fail "the example program package does not build with the installed kit"

step "Starting /usr/sbin/bpfbrokerd --foreground by hand"
systemd-tmpfiles --create /usr/lib/tmpfiles.d/bpfbroker.conf
/usr/sbin/bpfbrokerd --foreground --no-dbus >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  [[ -S /run/bpfbroker/org.bpfbroker.Broker ]] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log"; fail "bpfbrokerd exited"; }
  sleep 0.1
done
[[ -S /run/bpfbroker/org.bpfbroker.Broker ]] || fail "no socket after 10 s"

step "A member of group bpfbroker acquires udp_stats; a non-member is refused"
as_nobody() { setpriv --reuid=65534 --regid=65534 "$@"; }
out=$(as_nobody --groups="$gid" /usr/bin/bpfbrokerctl acquire udp_stats --json) ||
  { cat "$work/daemon.log"; fail "a member of bpfbroker could not acquire udp_stats"; }
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["name"] == "udp_stats" and "stats" in d["maps"], d' "$out" ||
  fail "unexpected acquire reply: $out"
echo "member: acquired udp_stats"
if err=$(as_nobody --clear-groups /usr/bin/bpfbrokerctl acquire udp_stats --json 2>&1 >/dev/null); then
  fail "a non-member acquired udp_stats"
fi
[[ $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["error"])' "$err") == PermissionDenied ]] ||
  fail "the non-member's refusal is not PermissionDenied: $err"
echo "non-member: refused ($err)"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || fail "bpfbrokerd exited with status $? on SIGTERM"
daemon_pid=""

step "Purging leaves no file behind"
dpkg --purge "${packages[@]}"
installed_by_us=0
getent group bpfbroker >/dev/null && fail "purge left the group bpfbroker"
listing >"$work/after.txt"
if ! diff "$before" "$work/after.txt"; then fail "purge left the files above (> left behind, < removed)"; fi
echo "deb_test passed"
