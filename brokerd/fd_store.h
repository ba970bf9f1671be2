// The service manager's fd store (systemd's FDSTORE=1, FileDescriptorStoreMax=
// in bpfbrokerd.service): what the daemon needs of a live instance to find
// and cut it again is kept by the service manager too, so a `kill -9` or a
// restart loses no kernel object, and a shared program that nobody holds at
// that moment keeps its id. At the next start the fds come back through
// LISTEN_FDS/LISTEN_FDNAMES; the daemon keeps only those that match what its
// state journal recorded (state_journal.h), and removes the rest from the
// store (FDSTOREREMOVE=1).
//
// What is stored, named by program id (systemd's names need not be unique;
// these are, because a live program's id is):
//   guard-P         per-client instance P's guard map (never a map handed
//                   out, which would then outlive its program)
//   link-P          the broker's dup of instance P's io_uring_ops link
//   shared-P        shared instance P's program
//   shared-P-map-M  its map M
//
// Without a service manager (--foreground, tests, containers) there is no
// store, and a restart re-opens by id instead (broker_state.cpp).
#pragma once

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::brokerd {

// FileDescriptorStoreMax= of systemd/bpfbrokerd.service (a test checks they
// agree). Past it the daemon stores nothing more and a restart re-opens
// those instances by id; it never holds the store's fds of more than this.
inline constexpr std::size_t kFdStoreMax = 16384;

std::string guard_fd_name(std::uint32_t prog_id);
std::string link_fd_name(std::uint32_t prog_id);
std::string shared_program_fd_name(std::uint32_t prog_id);
std::string shared_map_fd_name(std::uint32_t prog_id, std::uint32_t map_id);
// Whether `name` has one of the shapes above.
bool is_store_fd_name(std::string_view name);

enum class BpfFdKind { Program, Map, Link };
// The kernel's id of the BPF object behind `fd` when it is of `kind` (told
// by its anon inode, as the kernel named it), else 0: a handed-back fd is
// checked for what it is, never taken on its name's word.
std::uint32_t bpf_fd_id(int fd, BpfFdKind kind);

// The fds the service manager passed at start: the listening socket (the
// one fd that is a listening AF_UNIX stream socket and no store name), and
// what the store handed back, by name. Every fd is made CLOEXEC.
struct PassedFds {
    UniqueFd listening_socket;
    std::map<std::string, UniqueFd, std::less<>> stored;
    // Names handed back more than once, or that are neither a store name
    // nor the socket: closed, and to be removed from the store.
    std::vector<std::string> refused;
    // What the restore took and keeps using (still in the store).
    std::set<std::string> kept;

    // Takes the stored fd `name` out; invalid when none came back.
    UniqueFd take(std::string_view name);
    // `name` (taken) is in use: it stays in the store.
    void keep(const std::string& name) { kept.insert(name); }
    // `name` (taken) matched no record, or its instance is gone: removed.
    void refuse(const std::string& name) { refused.push_back(name); }
};
// Reads LISTEN_FDS/LISTEN_FDNAMES (and unsets them). InvalidParameter when
// two listening sockets were passed.
Result<PassedFds> take_passed_fds();

class FdStore {
public:
    // The store of the service manager at NOTIFY_SOCKET, or null without
    // one. `held` names what it handed back and the daemon kept.
    static std::unique_ptr<FdStore> from_environment(std::set<std::string> held);

    // Gives the service manager a copy of `fd` under `name`. False when the
    // store is full (kFdStoreMax) or the message failed: the instance then
    // is re-opened by id after a restart, as without a store.
    bool keep(const std::string& name, int fd);
    // Removes `name` from the store when it holds it.
    void drop(const std::string& name);
    // Removes what a per-client instance stored (guard-P, link-P).
    void drop_instance(std::uint32_t prog_id);
    // Removes what a shared instance stored (shared-P, shared-P-map-M).
    void drop_shared(std::uint32_t prog_id, const std::vector<std::uint32_t>& map_ids);
    // Removes `name` whether or not this run stored it (handed-back leftovers).
    void remove(const std::string& name);
    [[nodiscard]] bool full() const;
    [[nodiscard]] std::size_t size() const;

private:
    explicit FdStore(std::set<std::string> held) : names_(std::move(held)) {}
    mutable std::mutex mutex_;
    std::set<std::string> names_;
};

}  // namespace bpfbroker::brokerd
