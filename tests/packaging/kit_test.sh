#!/usr/bin/env bash
# The packager's kit (issue 12 item 2): examples/program_package builds
# against an installed libbpfbroker-dev CMake package, its pkt_count program
# installs into a root, is refused while its key is unknown, and is valid in
# `bpfbrokerctl catalog` once the key is trusted.
#   KIT_PREFIX   where the kit is installed (the prefix of lib/*/cmake/bpfbroker),
#                or BUILD_DIR: a build tree to stage with cmake --install first
#   BPFBROKERCTL the bpfbrokerctl the kit and the check use
#   SOURCE_DIR   the checkout
set -euo pipefail
: "${BPFBROKERCTL:?}" "${SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/bpfbroker-kit-XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
if [[ -z ${KIT_PREFIX:-} ]]; then
  : "${BUILD_DIR:?set KIT_PREFIX or BUILD_DIR}"
  DESTDIR="$work/stage" cmake --install "$BUILD_DIR" --prefix /usr >/dev/null
  KIT_PREFIX=$work/stage/usr
fi
CTL=("$BPFBROKERCTL")
[[ $(id -u) -eq 0 ]] || CTL+=(--trust-own-files)
state() {  # root program
  "${CTL[@]}" catalog --root "$1" --json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(next((p["state"] for p in d["programs"] if p["name"] == sys.argv[1]), "absent"))' "$2"
}

openssl genpkey -algorithm ed25519 -out "$work/vendor.key" 2>/dev/null
openssl pkey -in "$work/vendor.key" -pubout -out "$work/vendor.pem"
cmake -S "$SOURCE_DIR/examples/program_package" -B "$work/build" -DCMAKE_PREFIX_PATH="$KIT_PREFIX" \
  -DBPFBROKER_CTL="$BPFBROKERCTL" -DBPFBROKER_SIGNING_KEY="$work/vendor.key" >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "the example does not configure against the kit"; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "the example does not build"; }
grep -q "Checking the manifest of pkt_count with the daemon's parser" "$work/build.log" || fail "the manifest was not checked"
strings "$work/build/bpfbroker-programs/pkt_count/pkt_count.bpf.o" | grep -q "$work" && fail "the object holds the build path"

root=$work/root
mkdir -p "$root"/usr/lib/bpfbroker/{programs.d,keys.d,allowlist.d}
cmake --install "$work/build" --prefix "$root/usr" >/dev/null
for f in pkt_count.bpf.o manifest.json manifest.json.sig; do
  [[ -f $root/usr/lib/bpfbroker/programs.d/pkt_count/$f ]] || fail "not installed: $f"
done
chmod -R go-w "$root"
[[ $(state "$root" pkt_count) == untrusted-signer ]] || fail "pkt_count is $(state "$root" pkt_count) before its key is trusted"
install -m 0644 "$work/vendor.pem" "$root/usr/lib/bpfbroker/keys.d/vendor.pem"
[[ $(state "$root" pkt_count) == valid ]] || fail "pkt_count is $(state "$root" pkt_count) with its key trusted"

# A manifest the daemon's parser refuses stops the build before signing.
sed 's/"per-client"/"sometimes"/' "$SOURCE_DIR/examples/program_package/manifest.json.in" >"$work/bad.json.in"
cp -r "$SOURCE_DIR/examples/program_package" "$work/bad-src"
cp "$work/bad.json.in" "$work/bad-src/manifest.json.in"
cmake -S "$work/bad-src" -B "$work/bad-build" -DCMAKE_PREFIX_PATH="$KIT_PREFIX" -DBPFBROKER_CTL="$BPFBROKERCTL" \
  -DBPFBROKER_SIGNING_KEY="$work/vendor.key" >/dev/null
if cmake --build "$work/bad-build" >"$work/bad.log" 2>&1; then fail "an invalid manifest was signed"; fi
grep -q 'ManifestInvalid' "$work/bad.log" || { cat "$work/bad.log"; fail "no ManifestInvalid in the failed build"; }
[[ -e $work/bad-build/bpfbroker-programs/pkt_count/manifest.json.sig ]] && fail "the invalid manifest has a signature"
echo "PASS"
