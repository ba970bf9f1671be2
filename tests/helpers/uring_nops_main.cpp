// bpfbroker-test-uring-nops N [STATUS]: makes one io_uring, submits and
// reaps exactly N NOPs on it, and exits with STATUS (default 0). The
// process whose io_uring statistics the uring-stats tests predict exactly.
#include "support/uring_nops.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv)
{
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: %s N [STATUS]\n", argv[0]);
        return 2;
    }
    const unsigned count = static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10));
    const int status = argc == 3 ? std::atoi(argv[2]) : 0;
    io_uring ring{};
    if (int r = io_uring_queue_init(64, &ring, 0); r != 0) {
        std::fprintf(stderr, "io_uring_queue_init: %d\n", r);
        return 1;
    }
    try {
        bpfbroker::test_support::run_nops(ring, count);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    io_uring_queue_exit(&ring);
    return status;
}
