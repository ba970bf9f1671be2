#!/usr/bin/env bash
# Every shipped program verifies with the development key: the CLI prints
# its signer and "ok", and --json says the same.
source "$(dirname "$0")/lib.sh"

pub="$DEV_KEY_DIR/dev-signing-key.pub.pem"
key_id=$(openssl pkey -pubin -in "$pub" -outform DER | sha256sum | cut -d' ' -f1)
count=0
for dir in "$PROGRAMS_DIR"/*/; do
  [[ -f "$dir/manifest.json" ]] || continue
  name=$(basename "$dir")
  out=$("${CTL[@]}" verify --key "$pub" "$dir")
  expect_contains "$out" "$name" "verify $name"
  expect_contains "$out" ": ok" "verify $name"
  expect_contains "$out" "signer:   $key_id" "verify $name"
  expect_contains "$out" "revocation: cuts live instances" "verify $name (every shipped program declares a guard)"
  json=$("${CTL[@]}" --json verify --key "$pub" "$dir")
  [[ $(json_get "$json" 'd["ok"]') == True ]] || fail "$name: --json ok is not true: $json"
  [[ $(json_get "$json" 'd["signer"]["key_id"]') == "$key_id" ]] || fail "$name: wrong signer in $json"
  [[ $(json_get "$json" 'd["cut_live"]') == True ]] || fail "$name: --json cut_live is not true: $json"
  count=$((count + 1))
done
[[ $count -ge 4 ]] || fail "expected at least 4 shipped programs, found $count"

# A key that did not sign them: refused, exit status 1, reason named.
openssl genpkey -algorithm ed25519 -out "$SCRATCH/other.pem" 2>/dev/null
openssl pkey -in "$SCRATCH/other.pem" -pubout -out "$SCRATCH/other.pub.pem"
set +e
out=$("${CTL[@]}" verify --key "$SCRATCH/other.pub.pem" "$PROGRAMS_DIR/udp_stats")
rc=$?
set -e
[[ $rc -eq 1 ]] || fail "verify with the wrong key exited $rc"
expect_contains "$out" "UntrustedSigner" "verify with the wrong key"
# Every reason at once: wrong signer AND a tampered object are both named.
cp -r "$PROGRAMS_DIR/udp_stats" "$SCRATCH/udp_stats"
chmod -R go-w "$SCRATCH/udp_stats"
printf 'X' >>"$SCRATCH/udp_stats/udp_stats.bpf.o"
set +e
out=$("${CTL[@]}" verify --key "$SCRATCH/other.pub.pem" "$SCRATCH/udp_stats")
set -e
expect_contains "$out" "UntrustedSigner" "verify of a tampered copy with the wrong key"
expect_contains "$out" "ObjectHashMismatch" "verify of a tampered copy with the wrong key"
json=$("${CTL[@]}" --json verify --key "$SCRATCH/other.pub.pem" "$SCRATCH/udp_stats" || true)
[[ $(json_get "$json" 'len(d["reasons"])') == 2 ]] || fail "expected two reasons: $json"
echo "ok: $count shipped programs verify; a foreign key is refused; every reason is listed"
