# Helpers for the CLI tests: each test script sources this, runs real
# commands, and fails on the first broken expectation with what it saw.
set -euo pipefail

: "${BPFBROKERCTL:?set BPFBROKERCTL to the bpfbrokerctl binary}"
: "${PROGRAMS_DIR:?set PROGRAMS_DIR to the build tree programs/ folder}"
: "${DEV_KEY_DIR:?set DEV_KEY_DIR to the build tree dev-keys/ folder}"

SCRATCH=$(mktemp -d /tmp/bpfbroker-cli-XXXXXX)
chmod 0755 "$SCRATCH"
trap 'rm -rf "$SCRATCH"' EXIT

# Policy files must be root-owned on a real system; as non-root the tests
# accept the caller's own files instead.
CTL=("$BPFBROKERCTL")
[[ $(id -u) -eq 0 ]] || CTL+=(--trust-own-files)

fail() { echo "FAIL: $*" >&2; exit 1; }

expect_contains() {  # haystack needle what
  [[ "$1" == *"$2"* ]] || fail "$3: expected to find '$2' in:"$'\n'"$1"
}

# jq is not assumed: python3 reads JSON for the assertions.
json_get() {  # json python-expression-on-d
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$2" <<<"$1"
}

# A fresh root laid out like / with one trusted key file.
make_root() {  # dir pubkey.pem
  mkdir -p "$1"/usr/lib/bpfbroker/{programs.d,keys.d,allowlist.d} "$1"/etc/bpfbroker/{programs.d,keys.d,allowlist.d}
  chmod -R 0755 "$1"
  install -m 0644 "$2" "$1/usr/lib/bpfbroker/keys.d/$(basename "$2")"
}

# A root holding udp_stats signed with the openssl tool alone, by a fresh
# Ed25519 key: $SCRATCH/vendor.key (private), $SCRATCH/vendor.pem (trusted).
# Sets `prog` to the program's folder.
make_openssl_signed_root() {  # dir
  openssl genpkey -algorithm ed25519 -out "$SCRATCH/vendor.key" 2>/dev/null
  openssl pkey -in "$SCRATCH/vendor.key" -pubout -out "$SCRATCH/vendor.pem"
  make_root "$1" "$SCRATCH/vendor.pem"
  prog="$1/usr/lib/bpfbroker/programs.d/udp_stats"
  mkdir -m 0755 "$prog"
  install -m 0644 "$PROGRAMS_DIR/udp_stats/udp_stats.bpf.o" "$PROGRAMS_DIR/udp_stats/manifest.json" "$prog/"
  openssl pkeyutl -sign -rawin -inkey "$SCRATCH/vendor.key" -in "$prog/manifest.json" -out "$prog/manifest.json.sig"
  chmod 0644 "$prog/manifest.json.sig"
}
