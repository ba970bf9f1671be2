#!/usr/bin/env bash
# Installs the Debian packages bpfbroker needs to build, test and run its demo.
# Idempotent: does nothing (and prints nothing) when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  clang llvm libclang-rt-14-dev
  libbpf-dev libelf-dev zlib1g-dev bpftool
  liburing-dev
  libssl-dev openssl
  nlohmann-json3-dev libcli11-dev
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dbus-daemon dbus-bin polkitd systemd libglib2.0-bin util-linux
  python3
  debhelper dpkg-dev lintian adduser
)
# BPFBROKER_TEST_KERNEL names a kernel image the io_uring_ops tests boot
# under QEMU (scripts/vm-test.sh).
if [[ -n "${BPFBROKER_TEST_KERNEL:-}" ]]; then
  packages+=(qemu-system-x86)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
