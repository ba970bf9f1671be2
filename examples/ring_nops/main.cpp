// bpfbroker-example-ring-nops: an unprivileged process runs ring_nops, an
// io_uring_bpf_ops program it could not load itself, inside its own ring
// (Linux 7.1). It sets up a DEFER_TASKRUN ring, asks bpfbrokerd to attach
// ring_nops to it (AttachRing names the ring's fd number; the daemon copies
// it with pidfd_getfd), makes ONE io_uring_enter, during which the program
// keeps --in-flight NOPs in flight until --total complete, and prints what
// the program counted. See README.md.
#include <bpfbroker/client.h>
#include <bpfbroker/kernel_uapi.h>

#include "ring_nops/ring_nops.h"

#include <CLI/CLI.hpp>
#include <bpf/bpf.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

int main(int argc, char** argv)
{
    CLI::App app{"Runs ring_nops inside this process's own io_uring ring through bpfbrokerd (Linux 7.1+)"};
    std::string socket = std::string(bpfbroker::kDefaultSocketPath);
    std::uint32_t total = 10000;
    std::uint32_t in_flight = 8;
    std::uint32_t entries = 64;
    app.add_option("--socket", socket, "bpfbrokerd's socket")->capture_default_str();
    app.add_option("--total", total, "NOPs to complete")->capture_default_str();
    app.add_option("--in-flight", in_flight, "NOPs kept in flight (1..64)")->capture_default_str();
    app.add_option("--entries", entries, "SQ entries of the ring")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    namespace uapi = bpfbroker::uapi;
    io_uring_params params;
    std::memset(&params, 0, sizeof(params));
    params.flags = uapi::kIoringSetupDeferTaskrun | uapi::kIoringSetupSingleIssuer | uapi::kIoringSetupNoSqarray |
                   uapi::kIoringSetupSqRewind;
    bpfbroker::UniqueFd ring(static_cast<int>(::syscall(SYS_io_uring_setup, entries, &params)));
    if (!ring) {
        std::cerr << "io_uring_setup: " << std::strerror(errno) << " (SQ_REWIND needs Linux 7.1)\n";
        return 1;
    }
    auto client = bpfbroker::Client::connect_socket(socket);
    if (!client) {
        std::cerr << client.error().describe() << "\n";
        return 1;
    }
    auto program = client->attach_ring("ring_nops", ring.get(), params,
                                       {.parameters = {{"total", total}, {"in_flight", in_flight}}});
    if (!program) {
        std::cerr << "attach_ring: " << program.error().describe() << "\n";
        return 1;
    }
    // One system call; the program submits and reaps inside it.
    const long entered = ::syscall(SYS_io_uring_enter, ring.get(), 0, 0, IORING_ENTER_GETEVENTS, nullptr, 0);
    if (entered < 0) {
        std::cerr << "io_uring_enter: " << std::strerror(errno) << "\n";
        return 1;
    }
    ring_nops_stats stats{};
    const std::uint32_t key = 0;
    if (bpf_map_lookup_elem(program->map("stats")->get(), &key, &stats) != 0) {
        std::cerr << "reading the stats map: " << std::strerror(errno) << "\n";
        return 1;
    }
    std::cout << "uid " << ::getuid() << ": 1 io_uring_enter, " << stats.completions << " NOPs completed, "
              << stats.steps << " loop steps, " << stats.submit_errors << " submit errors\n";
    return stats.completions == total ? 0 : 1;
}
