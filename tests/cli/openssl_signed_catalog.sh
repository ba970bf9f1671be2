#!/usr/bin/env bash
# A program signed only with the openssl command line is valid in
# `bpfbrokerctl catalog --json`, and refused once one byte of its object
# changes. Also: CLI keygen/sign output verifies with openssl.
source "$(dirname "$0")/lib.sh"

root="$SCRATCH/root"
make_openssl_signed_root "$root"

json=$("${CTL[@]}" --root "$root" --json catalog)
[[ $(json_get "$json" 'd["programs"][0]["name"]') == udp_stats ]] || fail "catalog: $json"
[[ $(json_get "$json" 'd["programs"][0]["state"]') == valid ]] || fail "openssl-signed program not valid: $json"

# Flip one byte in the middle of the object.
python3 - "$prog/udp_stats.bpf.o" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x01
open(p, 'wb').write(bytes(b))
PY
json=$("${CTL[@]}" --root "$root" --json catalog)
[[ $(json_get "$json" 'd["programs"][0]["state"]') == object-hash-mismatch ]] || fail "tampered object not refused: $json"
[[ $(json_get "$json" 'd["programs"][0]["reason"]["error"]') == ObjectHashMismatch ]] || fail "wrong reason: $json"

# The CLI's own keys and signatures are what openssl expects, for every key type.
for type in ed25519 ecdsa rsa; do
  "${CTL[@]}" keygen --type "$type" --out "$SCRATCH/$type.key" >/dev/null
  [[ $(stat -c %a "$SCRATCH/$type.key") == 600 ]] || fail "$type private key is not 0600"
  cp "$PROGRAMS_DIR/udp_stats/manifest.json" "$SCRATCH/m-$type.json"
  "${CTL[@]}" sign --key "$SCRATCH/$type.key" "$SCRATCH/m-$type.json" >/dev/null
  if [[ $type == ed25519 ]]; then
    openssl pkeyutl -verify -rawin -pubin -inkey "$SCRATCH/$type.key.pub" -in "$SCRATCH/m-$type.json" \
      -sigfile "$SCRATCH/m-$type.json.sig" >/dev/null || fail "openssl rejects the CLI's $type signature"
  else
    openssl dgst -sha256 -verify "$SCRATCH/$type.key.pub" -signature "$SCRATCH/m-$type.json.sig" \
      "$SCRATCH/m-$type.json" >/dev/null || fail "openssl rejects the CLI's $type signature"
  fi
done

# sign refuses a manifest the daemon would refuse, and says where.
echo '{"schema":1,"name":"x","bogus":true}' >"$SCRATCH/bad.json"
set +e
err=$("${CTL[@]}" sign --key "$SCRATCH/ed25519.key" "$SCRATCH/bad.json" 2>&1)
rc=$?
set -e
[[ $rc -ne 0 ]] || fail "sign accepted an invalid manifest"
expect_contains "$err" "ManifestInvalid" "sign of an invalid manifest"
echo "ok: openssl-signed program valid, tampered object refused, CLI signatures verify with openssl"
