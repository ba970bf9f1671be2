// A ring an io_uring_ops program can run in (Linux 7.1), set up with raw
// io_uring_setup (liburing 2.3 does not know NO_SQARRAY or SQ_REWIND), and
// whether the kernel has io_uring_bpf_ops at all. Shared by the e2e tests
// and bench/ring_bench.
#pragma once

#include "unprivileged_child.h"

#include <bpfbroker/kernel_uapi.h>
#include <bpfbroker/unique_fd.h>

#include <bpf/btf.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace bpfbroker::test_support {

// The flags ring_nops needs: the loop runs in the owner's io_uring_enter
// (DEFER_TASKRUN, which needs SINGLE_ISSUER), SQEs from index 0 (SQ_REWIND,
// which needs NO_SQARRAY).
inline constexpr std::uint32_t kLoopRingFlags = uapi::kIoringSetupDeferTaskrun | uapi::kIoringSetupSingleIssuer |
                                                uapi::kIoringSetupNoSqarray | uapi::kIoringSetupSqRewind;

// Why io_uring_ops tests cannot run here, or "" when they can.
inline std::string io_uring_bpf_ops_missing()
{
    btf* vmlinux = btf__load_vmlinux_btf();
    if (vmlinux == nullptr)
        return "no vmlinux BTF (/sys/kernel/btf/vmlinux), so no io_uring_bpf_ops";
    const bool found = btf__find_by_name_kind(vmlinux, uapi::kIoUringBpfOpsType, BTF_KIND_STRUCT) >= 0;
    btf__free(vmlinux);
    return found ? "" : "this kernel has no io_uring_bpf_ops (Linux 7.1+ with CONFIG_IO_URING_BPF_OPS): "
                        "run it in the VM, scripts/vm-test.sh --kernel BZIMAGE";
}

class LoopRing {
public:
    explicit LoopRing(unsigned entries, std::uint32_t flags = kLoopRingFlags)
    {
        std::memset(&params_, 0, sizeof(params_));
        params_.flags = flags;
        fd_ = UniqueFd(static_cast<int>(::syscall(SYS_io_uring_setup, entries, &params_)));
        require(fd_.valid(), "io_uring_setup(flags " + std::to_string(flags) +
                                               ") failed: " + errno_text(errno));
    }
    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] const io_uring_params& params() const { return params_; }
    [[nodiscard]] io_uring_params& params() { return params_; }

    // io_uring_enter(fd, 0, min_complete, GETEVENTS): with a loop program it
    // runs the loop until the program stops. Returns the result or -errno.
    int enter(unsigned min_complete = 0) const
    {
        const long r = ::syscall(SYS_io_uring_enter, fd_.get(), 0, min_complete, IORING_ENTER_GETEVENTS, nullptr, 0);
        return r < 0 ? -errno : static_cast<int>(r);
    }

private:
    io_uring_params params_{};
    UniqueFd fd_;
};

}  // namespace bpfbroker::test_support
