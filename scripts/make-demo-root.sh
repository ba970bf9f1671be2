#!/usr/bin/env bash
# Lays out a scratch root for bpfbrokerd: the in-tree programs as a vendor
# package would install them (usr/lib/bpfbroker/programs.d/NAME), and the
# build tree's development public key as the one trusted vendor key.
# Usage: scripts/make-demo-root.sh ROOT [BUILD_DIR]
set -euo pipefail
root=${1:?usage: make-demo-root.sh ROOT [BUILD_DIR]}
build=${2:-$(cd "$(dirname "$0")/.." && pwd)/build}

[[ -f "$build/dev-keys/dev-signing-key.pub.pem" ]] || {
  echo "make-demo-root: no development key in $build/dev-keys; build first" >&2
  exit 1
}
umask 022
install -d -m 0755 "$root" "$root"/usr/lib/bpfbroker/{programs.d,keys.d,allowlist.d} \
  "$root"/etc/bpfbroker/{programs.d,keys.d,allowlist.d} "$root"/var/lib/bpfbroker "$root"/run/bpfbroker
install -m 0644 "$build/dev-keys/dev-signing-key.pub.pem" "$root/usr/lib/bpfbroker/keys.d/bpfbroker-dev.pem"
count=0
for dir in "$build"/programs/*/; do
  [[ -f "$dir/manifest.json" && -f "$dir/manifest.json.sig" ]] || continue
  name=$(basename "$dir")
  install -d -m 0755 "$root/usr/lib/bpfbroker/programs.d/$name"
  install -m 0644 "$dir"/manifest.json "$dir"/manifest.json.sig "$dir"/*.bpf.o "$root/usr/lib/bpfbroker/programs.d/$name/"
  count=$((count + 1))
done
[[ $count -gt 0 ]] || { echo "make-demo-root: no built programs in $build/programs" >&2; exit 1; }
