// The direct socket: an epoll loop serving org.bpfbroker.Broker over Varlink
// framing (NUL-terminated JSON) on a listening AF_UNIX stream socket.
//
// Every caller-controlled resource is bounded: message size, fds (none are
// accepted), connections per uid and in total, requests per second per
// connection, queued reply bytes (a client that does not read stops being
// read), and the time an unfinished message may sit in the buffer. All
// sockets are non-blocking, so one slow or hostile client never blocks the
// loop or any other client. A peer's user and group names come from a cache
// or from a worker thread (PeerNameResolver): the loop never waits on NSS.
// Each frame is parsed once (parse_frame: the fast codec for AcquireProgram).
// Calls are peeked and taken off the socket in batches, so that reading one
// does not wake a caller blocked in recvmsg (on_readable says why); the
// connections are polled edge-triggered for it.
#pragma once

#include "brokerd/broker.h"
#include "brokerd/limits.h"
#include "brokerd/peer_name_resolver.h"
#include "brokerd/varlink_methods.h"

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {

class VarlinkServer {
public:
    VarlinkServer(Broker& broker, UniqueFd listen_fd, Limits limits);
    ~VarlinkServer();
    VarlinkServer(const VarlinkServer&) = delete;
    VarlinkServer& operator=(const VarlinkServer&) = delete;

    // Creates, binds and listens on `path` (mode 0666: authorization is per
    // request), replacing a stale socket file but never another kind of file.
    static Result<UniqueFd> listen_at(const std::string& path);

    // Serves until on_signal returns false. signal_fd is a signalfd whose
    // signals are passed to on_signal (e.g. SIGHUP reload, SIGTERM stop).
    Result<void> run(int signal_fd, const std::function<bool(int signo)>& on_signal);

    [[nodiscard]] std::size_t connection_count() const { return connections_.size(); }

private:
    struct Connection;
    void accept_all();
    void register_connection(Connection& c);
    void names_resolved();
    void on_readable(Connection& c, bool peer_closed);
    void serve(int fd, Connection& c, std::uint32_t events);
    void read_if_ready(Connection& c, std::uint32_t events);
    void finish(int fd, Connection& c, std::uint32_t events);
    void settle(int fd, Connection& c);
    void consume_peeked(Connection& c);
    static std::uint32_t edge_trigger(const Connection& c);
    void process_frames(Connection& c);
    void queue_response(Connection& c, nlohmann::json message);
    void queue_encoded(Connection& c, EncodedResponse resp);
    void flush(Connection& c);
    void update_interest(Connection& c);
    void close_connection(int fd);
    void evict_idle_connection();
    void sweep_timeouts();
    // Whether `c` may have more replies queued (bytes and fd budgets).
    [[nodiscard]] bool may_queue(const Connection& c) const;
    void refresh_all_interest();
    void release_queued_fds(Connection& c, std::size_t count);
    void pause_accepting();
    void resume_accepting_if_due();
    // `calls_read`: the calls this turn read from the connections it polled (or read ahead).
    void choose_read_ahead(bool was_read_ahead, std::uint64_t calls_read);

    Broker& broker_;
    UniqueFd listen_fd_;
    UniqueFd epoll_fd_;
    Limits limits_;
    std::shared_ptr<const PolicySnapshot> limits_source_;  // the snapshot limits_ came from
    std::map<int, std::unique_ptr<Connection>> connections_;
    // Per uid with a connection open (erased with its last): one entry for
    // both, so a reply's fds counted per uid allocate nothing.
    struct UidUsage {
        unsigned connections = 0;
        std::size_t queued_fds = 0;
    };
    std::map<uid_t, UidUsage> per_uid_;
    std::size_t queued_fds_total_ = 0;
    bool queues_shrank_ = false;
    struct Ready {
        int fd;
        std::uint64_t serial;  // a number reused meanwhile is another connection
        std::uint32_t events;
    };
    std::vector<Ready> ready_;  // connections read this turn, to flush after
    std::vector<int> fd_numbers_;  // a reply's fds for sendmsg, kept to spare an allocation per reply
    std::vector<int> read_again_;            // connections to read without an event (see settle)
    // The connection the next turn reads without polling first (see
    // choose_read_ahead), how many turns in a row did, and how many polled
    // turns must pass before the next read-ahead.
    struct ReadAhead {
        int fd = -1;
        std::uint64_t serial = 0;
        unsigned turns = 0;
        unsigned paused = 0;
    };
    ReadAhead ahead_;
    std::uint64_t frames_read_ = 0;  // calls taken from all connections, counted for choose_read_ahead
    std::size_t connections_unconsumed_ = 0;  // connections with peeked bytes still on their socket
    AcquireReplyCache replies_;  // this loop's warm acquire replies
    std::chrono::steady_clock::time_point next_sweep_{};
    // Read once when epoll_wait returns: the time of everything this turn
    // does (a turn is bounded work, timeouts are of milliseconds at least),
    // instead of a clock read per call for each stamp.
    std::chrono::steady_clock::time_point turn_started_{};
    // Out of fds (EMFILE): stop polling the listener for a moment instead
    // of spinning on a socket that stays readable.
    std::chrono::steady_clock::time_point accept_paused_until_{};
    PeerNameResolver names_;
    std::uint64_t next_serial_ = 0;
};

}  // namespace bpfbroker::brokerd
