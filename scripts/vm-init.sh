#!/bin/sh
# PID 1 inside the VM that scripts/vm-test.sh boots: mounts what a test
# needs over the read-only root, runs the command from the shared folder,
# records its status there and exits, which powers the VM off (panic=-1
# with -no-reboot). Never run it on a real machine.
[ "$$" -eq 1 ] || { echo "vm-init.sh: only for PID 1 in a test VM" >&2; exit 2; }
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for d in /tmp /run /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$d"; done
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmshare /mnt || { echo "vm-init: no share" >/dev/console; exit 1; }
# The command's directory, at its own path (a checkout under /tmp is hidden
# by the fresh /tmp above otherwise).
cwd=$(cat /mnt/cwd 2>/dev/null)
if [ -n "$cwd" ] && [ "$cwd" != / ]; then
    mkdir -p "$cwd" 2>/dev/null
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostcwd "$cwd" ||
        echo "vm-init: could not mount $cwd" >/mnt/output.log
fi
ip link set lo up 2>/dev/null
[ -f /mnt/env.sh ] && . /mnt/env.sh
echo "vm-init: kernel $(uname -r)" >>/mnt/output.log
sh /mnt/command.sh </dev/null >>/mnt/output.log 2>&1
echo $? >/mnt/status
sync
umount /mnt
exit 0
