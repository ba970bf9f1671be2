#!/usr/bin/env bash
# Runs a command inside a VM booted from a given kernel image, with this
# machine's root filesystem mounted read-only over 9p, and exits with the
# command's status. This is how code for kernels newer than the one the
# machine runs is tested (io_uring_bpf_ops needs 7.1+).
#
#   scripts/vm-test.sh --kernel BZIMAGE [--memory MiB] [--cpus N] [--timeout S] -- COMMAND [ARG...]
#
# The kernel must have 9P_FS, NET_9P_VIRTIO and VIRTIO_PCI built in (no
# initramfs is used). Inside the VM, COMMAND runs as root in the current
# directory (shared on its own, so it may be under /tmp) with /tmp, /run
# and /var/tmp as fresh tmpfs, and proc, sysfs,
# devtmpfs, cgroup2, bpffs and tracefs mounted (scripts/vm-init.sh). The
# VM runs under TCG (-accel tcg -cpu max): nested KVM hangs in the kernel's
# decompressor on these machines. Run as root (qemu passes file ownership
# through only then, and the daemon under test checks it). The host's root
# is exported with multidevs=remap: without it proc and sysfs, whose root
# inodes have the same number on different devices, collide in the guest.
# Output: the guest's output; exit status: COMMAND's, 1 when it did not
# finish (the console's tail is printed), 2 for a usage error.
set -euo pipefail

usage() { sed -n '7,8p' "$0" | sed 's/^# \{0,3\}//' >&2; exit 2; }
die() { echo "vm-test: $*" >&2; exit 2; }

kernel="" memory=2048 cpus=2 timeout_s=1800
while [[ $# -gt 0 ]]; do
    case "$1" in
    --kernel) kernel=${2:-}; shift 2 ;;
    --memory) memory=${2:-}; shift 2 ;;
    --cpus) cpus=${2:-}; shift 2 ;;
    --timeout) timeout_s=${2:-}; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[[ -n "$kernel" && $# -gt 0 ]] || usage
[[ -f "$kernel" ]] || die "no kernel image at $kernel"
[[ $(id -u) -eq 0 ]] || die "run as root"
command -v qemu-system-x86_64 >/dev/null ||
    die "qemu-system-x86_64 is not installed (BPFBROKER_TEST_KERNEL=$kernel scripts/install-deps.sh installs it)"

here=$(cd "$(dirname "$0")" && pwd)
share=$(mktemp -d /tmp/vm-test.XXXXXX)
trap 'rm -rf "$share"' EXIT
# The command, quoted once here and run by vm-init.sh inside the VM.
{
    printf 'cd %q || exit 125\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
} >"$share/command.sh"
# The current directory is shared again on its own, read-only, and mounted
# at the same path in the guest: a checkout under /tmp (a CI clone) would
# otherwise be hidden by the guest's fresh /tmp.
printf '%s\n' "$PWD" >"$share/cwd"
env | grep -E '^(BPFBROKER_|GTEST_|CI=)' | sed 's/^/export /' >"$share/env.sh" || true

console="$share/console.log"
set +e
timeout "$timeout_s" qemu-system-x86_64 \
    -accel tcg -cpu max -m "$memory" -smp "$cpus" \
    -kernel "$kernel" \
    -append "console=ttyS0 quiet panic=-1 rootfstype=9p root=hostroot rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose ro init=$here/vm-init.sh" \
    -fsdev local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=share,path="$share",security_model=passthrough \
    -device virtio-9p-pci,fsdev=share,mount_tag=vmshare \
    -fsdev local,id=hostcwd,path="$PWD",security_model=passthrough,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostcwd,mount_tag=hostcwd \
    -nographic -no-reboot -serial file:"$console" -monitor none -display none \
    </dev/null >"$share/qemu.log" 2>&1
qemu_status=$?
set -e

[[ -f "$share/output.log" ]] && cat "$share/output.log"
if [[ ! -f "$share/status" ]]; then
    echo "vm-test: the command did not finish in the VM (qemu exit $qemu_status); console:" >&2
    tail -n 60 "$console" >&2 || true
    cat "$share/qemu.log" >&2 || true
    exit 1
fi
exit "$(cat "$share/status")"
