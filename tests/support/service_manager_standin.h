// What systemd does for bpfbrokerd.service, for tests on a machine where no
// systemd runs as PID 1: it holds the listening socket (socket activation),
// reads the daemon's notify socket (READY=1; FDSTORE=1 with FDNAME= and the
// fds; FDSTOREREMOVE=1 with FDNAME=), keeps the stored fds up to
// FileDescriptorStoreMax= (what the unit file says; past it, like systemd,
// it closes what it is given), and passes the socket and the store to the
// next daemon it starts (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID,
// NOTIFY_SOCKET). A reader thread serves the notify socket while it lives.
#pragma once

#include "process.h"

#include <bpfbroker/unique_fd.h>

#include <atomic>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bpfbroker::test_support {

// FileDescriptorStoreMax= of systemd/bpfbrokerd.service in the source tree.
std::size_t unit_fd_store_max();

class ServiceManagerStandin {
public:
    // Listens on `socket_path` (mode 0666) and on the notify socket
    // `notify_path`. Throws std::runtime_error when either cannot be made.
    ServiceManagerStandin(const std::string& notify_path, const std::string& socket_path, std::size_t store_max);
    ~ServiceManagerStandin();
    ServiceManagerStandin(const ServiceManagerStandin&) = delete;
    ServiceManagerStandin& operator=(const ServiceManagerStandin&) = delete;

    // Makes `o` start a daemon as this service manager would: the socket
    // first, then every stored fd, named; NOTIFY_SOCKET. Forgets READY.
    // The fds are this object's: `o` must be spawned before it changes.
    void prepare(SpawnOptions& o);
    // Whether the daemon started last said READY=1.
    [[nodiscard]] bool ready() const { return ready_.load(); }

    // The names of the stored fds, sorted, one per fd.
    [[nodiscard]] std::vector<std::string> stored_names() const;
    // FDSTORE messages refused because the store was full.
    [[nodiscard]] std::size_t refused() const;
    // For tests of the daemon's checks: stores `fd` as `name`, in place of
    // what was stored under that name.
    void replace(const std::string& name, UniqueFd fd);

private:
    void serve();
    // Reads and applies one pending notify message; false when none is pending.
    bool receive_one();
    void handle(const std::string& text, std::vector<UniqueFd> fds);

    std::size_t store_max_;
    UniqueFd listening_;
    UniqueFd notify_;
    std::string notify_path_;
    UniqueFd stop_;  // an eventfd: wakes the reader to stop
    std::atomic<bool> ready_{false};
    std::mutex receive_mutex_;  // the reader thread and prepare() take turns
    mutable std::mutex mutex_;
    std::multimap<std::string, UniqueFd> store_;
    std::size_t refused_ = 0;
    std::thread reader_;
};

}  // namespace bpfbroker::test_support
