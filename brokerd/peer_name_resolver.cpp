// Names for socket peers off the event loop; see peer_name_resolver.h.
#include "brokerd/peer_name_resolver.h"

#include "brokerd/peer_identity.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace bpfbroker::brokerd {

struct PeerNameResolver::State {
    Lookup lookup;
    UniqueFd ready{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::pair<std::uint64_t, policy::Peer>> todo;
    std::vector<std::pair<std::uint64_t, policy::Peer>> done;
    bool stopping = false;

    void work()
    {
        std::unique_lock lock(mutex);
        for (;;) {
            wake.wait(lock, [this] { return stopping || !todo.empty(); });
            if (stopping)
                return;
            auto job = std::move(todo.front());
            todo.pop_front();
            lock.unlock();
            lookup(job.second);  // may block in NSS, with no lock held
            lock.lock();
            if (stopping)
                return;
            done.push_back(std::move(job));
            std::uint64_t one = 1;
            (void)!::write(ready.get(), &one, sizeof one);
        }
    }
};

PeerNameResolver::PeerNameResolver(Lookup lookup) : state_(std::make_shared<State>())
{
    state_->lookup = lookup ? std::move(lookup) : Lookup(resolve_peer_names);
    for (unsigned i = 0; i < kWorkers; ++i)
        std::thread([state = state_] { state->work(); }).detach();
}

PeerNameResolver::~PeerNameResolver()
{
    {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
    }
    state_->wake.notify_all();
}

void PeerNameResolver::submit(std::uint64_t ticket, policy::Peer peer)
{
    {
        std::lock_guard lock(state_->mutex);
        state_->todo.emplace_back(ticket, std::move(peer));
    }
    state_->wake.notify_one();
}

int PeerNameResolver::ready_fd() const
{
    return state_->ready.get();
}

std::vector<std::pair<std::uint64_t, policy::Peer>> PeerNameResolver::take_done()
{
    std::uint64_t n = 0;
    (void)!::read(state_->ready.get(), &n, sizeof n);
    std::lock_guard lock(state_->mutex);
    return std::exchange(state_->done, {});
}

}  // namespace bpfbroker::brokerd
