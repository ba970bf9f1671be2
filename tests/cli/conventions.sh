#!/usr/bin/env bash
# The CLI conventions users expect (issue 12 item 4): global options after
# the subcommand, --version on both programs, JSON errors under --json,
# `grants` with sources, `catalog` on a host without programs, the hint to
# start a daemon that is not running, a daemon refusing to start without
# its audit log, check-manifest, and `approve`
# refusing a user or group NSS does not know (against a real daemon).
source "$(dirname "$0")/lib.sh"
: "${BPFBROKERD:?set BPFBROKERD to the bpfbrokerd binary}" "${PROJECT_VERSION:?}" "${SOURCE_DIR:?}"

# --version on both programs, the version CMake was configured with.
[[ $("${CTL[@]}" --version) == "bpfbrokerctl $PROJECT_VERSION" ]] || fail "bpfbrokerctl --version"
[[ $("$BPFBROKERD" --version) == "bpfbrokerd $PROJECT_VERSION" ]] || fail "bpfbrokerd --version"

root="$SCRATCH/root"
make_openssl_signed_root "$root"

# An audit log the daemon cannot open stops it at start, named: it never
# runs without a sink it was told to write.
if err=$(timeout 30 "$BPFBROKERD" --root "$root" --foreground --no-dbus --socket "$SCRATCH/audit.sock" \
    --audit-log "$SCRATCH/no-such-dir/audit.log" 2>&1); then fail "bpfbrokerd ran without its audit log"; fi
expect_contains "$err" "cannot open the audit log $SCRATCH/no-such-dir/audit.log: No such file or directory" "unopenable audit log"

# Global options before and after the subcommand give the same answer.
before=$("${CTL[@]}" --root "$root" --json catalog)
after=$("${CTL[@]}" catalog --root "$root" --json)
[[ "$before" == "$after" ]] || fail "options after the subcommand differ:"$'\n'"$before"$'\n'"$after"
[[ $(json_get "$after" 'd["programs"][0]["state"]') == valid ]] || fail "catalog after: $after"

# check-manifest: the daemon's parser, a named error with the JSON path.
out=$("${CTL[@]}" check-manifest "$prog/manifest.json") || fail "valid manifest refused: $out"
expect_contains "$out" "valid manifest of udp_stats" "check-manifest"
sed 's/"per-client"/"sometimes"/' "$prog/manifest.json" >"$SCRATCH/bad.json"
if err=$("${CTL[@]}" check-manifest "$SCRATCH/bad.json" --json 2>&1 >/dev/null); then fail "bad manifest accepted"; fi
[[ $(json_get "$err" 'd["error"]') == ManifestInvalid ]] || fail "check-manifest error: $err"
expect_contains "$(json_get "$err" 'd["message"]')" '$.instance' "check-manifest names the path"

# Under --json every error is one JSON object on stderr; a missing daemon
# says how to start it.
if err=$("${CTL[@]}" list --socket "$SCRATCH/none.sock" --json 2>&1 >/dev/null); then fail "list without daemon"; fi
[[ $(json_get "$err" 'd["error"]') == SystemError ]] || fail "error is not JSON: $err"
expect_contains "$(json_get "$err" 'd["message"]')" "bpfbrokerd --socket $SCRATCH/none.sock --foreground" "hint to start the daemon"
if err=$("${CTL[@]}" acquire --json 2>&1 >/dev/null); then fail "acquire with no name"; fi
[[ $(json_get "$err" 'd["error"]') == InvalidParameter ]] || fail "usage error is not JSON: $err"
if err=$("${CTL[@]}" list --socket "$SCRATCH/none.sock" 2>&1 >/dev/null); then fail "list without daemon"; fi
expect_contains "$err" "bpfbrokerd is not running" "plain error with the hint"

# catalog on a host with no usr/lib/bpfbroker says so.
mkdir -m 0755 "$SCRATCH/empty"
out=$("${CTL[@]}" catalog --root "$SCRATCH/empty")
expect_contains "$out" "No programs are installed: $SCRATCH/empty/usr/lib/bpfbroker does not exist" "empty host"

# grants: vendor and /etc allow-lists and approvals, each with its source.
key_id=$(openssl pkey -pubin -in "$SCRATCH/vendor.pem" -outform DER | sha256sum | cut -d' ' -f1)
cat >"$root/usr/lib/bpfbroker/allowlist.d/vendor.json" <<JSON
{ "program": "udp_stats", "match": { "signer": "$key_id" }, "principals": { "groups": ["bpfbroker"] } }
JSON
cat >"$root/etc/bpfbroker/allowlist.d/local.json" <<JSON
[ { "program": "udp_stats", "match": { "signer": "$key_id" }, "principals": { "users": [1001] }, "polkit": true } ]
JSON
mkdir -p -m 0755 "$root/var/lib/bpfbroker"
sha=$(json_get "$after" 'd["programs"][0]["manifest_sha256"]')
cat >"$root/var/lib/bpfbroker/approvals.json" <<JSON
{ "schema": 1, "approvals": [ { "program": "udp_stats", "match": { "manifest_sha256": "$sha" },
  "principals": { "users": ["nobody"] }, "polkit": false } ], "revocations": [] }
JSON
chmod 0644 "$root"/usr/lib/bpfbroker/allowlist.d/* "$root"/etc/bpfbroker/allowlist.d/* "$root"/var/lib/bpfbroker/*
json=$("${CTL[@]}" grants --root "$root" --json)
sources=$(json_get "$json" '" ".join(sorted(g["source"] for g in d["grants"]))')
[[ "$sources" == "etc/bpfbroker/allowlist.d/local.json usr/lib/bpfbroker/allowlist.d/vendor.json var/lib/bpfbroker/approvals.json" ]] ||
  fail "grants sources: $json"
[[ $(json_get "$json" 'len(d["problems"])') == 0 ]] || fail "grants problems: $json"
out=$("${CTL[@]}" grants --root "$root")
expect_contains "$out" "udp_stats: group bpfbroker" "grants text"
expect_contains "$out" "from var/lib/bpfbroker/approvals.json" "grants text source"

# approve against a real daemon: an unknown user or group is refused.
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: approve needs a root daemon"; exit 77; fi
rm "$root/var/lib/bpfbroker/approvals.json"
mkdir -p -m 0755 "$root/run/bpfbroker"
# A private bus of the system type with the project's policy, for the D-Bus half.
sed "s|@BUS_SOCKET@|$SCRATCH/bus|; s|@PROJECT_POLICY@|$SOURCE_DIR/systemd/org.bpfbroker.Broker1.conf|" \
  "$SOURCE_DIR/tests/dbus/system-bus.conf.in" >"$SCRATCH/bus.conf"
dbus-daemon --config-file="$SCRATCH/bus.conf" --nofork --nopidfile >/dev/null 2>&1 &
bus=$!
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$SCRATCH/bus"
trap 'kill "$bus" 2>/dev/null; wait "$bus" 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 100); do [[ -S $SCRATCH/bus ]] && break; sleep 0.05; done
"$BPFBROKERD" --root "$root" --foreground >"$SCRATCH/daemon.log" 2>&1 &
daemon=$!
trap 'kill "$daemon" "$bus" 2>/dev/null; wait "$daemon" "$bus" 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 100); do [[ -S $root/run/bpfbroker/org.bpfbroker.Broker ]] && break; sleep 0.1; done
for who in "--user no_such_user_bpfbroker" "--group no_such_group_bpfbroker"; do
  # shellcheck disable=SC2086
  if err=$("${CTL[@]}" --root "$root" approve udp_stats $who --json 2>&1 >/dev/null); then fail "approve $who accepted"; fi
  [[ $(json_get "$err" 'd["error"]') == InvalidParameter ]] || fail "approve $who: $err"
  expect_contains "$(json_get "$err" 'd["message"]')" "is known on this system" "approve $who"
done
"${CTL[@]}" approve udp_stats --root "$root" --user nobody >/dev/null || fail "approve nobody: $(cat "$SCRATCH/daemon.log")"

# approve --signer: a grant by the key that signs the program now, listed by
# `grants` as a signer match; another key id is refused.
if err=$("${CTL[@]}" --root "$root" approve udp_stats --user nobody --signer "$(printf 'a%.0s' {1..64})" --json 2>&1 >/dev/null); then
  fail "approve by a key that does not sign udp_stats accepted"
fi
expect_contains "$(json_get "$err" 'd["message"]')" "is signed by $key_id" "approve --signer with another key"
json=$("${CTL[@]}" --root "$root" approve udp_stats --user nobody --signer "$key_id" --json) || fail "approve --signer refused"
[[ $(json_get "$json" 'd["signer"]') == "$key_id" ]] || fail "approve --signer reply: $json"
# The same over D-Bus (ApproveSigner), for another user: one grant, merged.
json=$("${CTL[@]}" --bus system approve udp_stats --user root --signer "$key_id" --json) || fail "approve --signer over D-Bus"
[[ $(json_get "$json" 'd["signer"]') == "$key_id" ]] || fail "approve --signer reply over D-Bus: $json"
json=$("${CTL[@]}" grants --root "$root" --json)
[[ $(json_get "$json" '[g["principals"]["users"] for g in d["grants"] if g["source"] == "var/lib/bpfbroker/approvals.json" and g["match"] == {"signer": "'"$key_id"'"}]') == "[['nobody', 'root']]" ]] ||
  fail "the signer approval is not in grants: $json"
echo "PASS"
