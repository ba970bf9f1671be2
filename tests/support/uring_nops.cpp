// NOPs through an io_uring; see uring_nops.h.
#include "uring_nops.h"

#include <algorithm>
#include <string>

namespace bpfbroker::test_support {

void run_nops(io_uring& ring, unsigned count)
{
    for (unsigned done = 0; done < count;) {
        const unsigned batch = std::min(count - done, 32u);
        for (unsigned i = 0; i < batch; ++i) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            require(sqe != nullptr, "the submission queue is full");
            io_uring_prep_nop(sqe);
        }
        require(io_uring_submit_and_wait(&ring, batch) == static_cast<int>(batch), "io_uring_submit_and_wait");
        for (unsigned i = 0; i < batch; ++i) {
            io_uring_cqe* cqe = nullptr;
            require(io_uring_wait_cqe(&ring, &cqe) == 0, "io_uring_wait_cqe");
            const int res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            require(res == 0, "a NOP completed with " + std::to_string(res));
        }
        done += batch;
    }
}

ChildProcess start_nop_flooder()
{
    return spawn_as(kNobodyUid, kNobodyGid, [](ChildChannel& channel) {
        io_uring ring{};
        const int r = io_uring_queue_init(64, &ring, 0);
        require(r == 0, "io_uring_queue_init: " + errno_text(-r));
        while (!channel.try_parent_line())
            run_nops(ring, 64);
        io_uring_queue_exit(&ring);
        return std::string("flooded");
    });
}

}  // namespace bpfbroker::test_support
