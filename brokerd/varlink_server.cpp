// The direct socket server; see varlink_server.h.
#include "brokerd/varlink_server.h"

#include "brokerd/log.h"
#include "brokerd/peer_identity.h"
#include "brokerd/varlink_methods.h"

#include "base/token_bucket.h"

#include <bpfbroker/error_names.h>
#include <bpfbroker/kernel_uapi.h>

#include "wire/fd_passing.h"
#include "wire/varlink_framing.h"

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

namespace bpfbroker::brokerd {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kListenTag = 1ull << 62;
constexpr std::uint64_t kSignalTag = 1ull << 61;
constexpr std::uint64_t kCallerExitsTag = 1ull << 60;
constexpr std::uint64_t kNamesTag = 1ull << 59;

// Calls are peeked and taken off the socket later, in batches (see
// on_readable): at most this many bytes wait, or for at most this long.
constexpr std::size_t kPeekedBytesBeforeConsume = 1024;
constexpr auto kPeekedConsumeAfter = std::chrono::milliseconds(10);

// Reading ahead (see choose_read_ahead): at most this many turns in a row
// skip epoll_wait, so every other fd (the listener, the signal fd, other
// callers) waits that many turns at most, each one caller's read, bounded
// as every read is; after a read-ahead that found nothing, this many
// turns pass before the next.
constexpr unsigned kReadAheadTurns = 8;
constexpr unsigned kReadAheadPauseTurns = 64;

// The kernel's pidfd of the peer, or an empty fd on kernels before 6.5
// (then programs bound to the calling process are refused).
UniqueFd peer_pidfd(int fd)
{
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0)
        return {};
    return UniqueFd(pidfd);  // the kernel makes every pidfd O_CLOEXEC
}

}  // namespace

struct VarlinkServer::Connection {
    UniqueFd fd;
    UniqueFd pidfd;  // SO_PEERPIDFD at accept, may be empty
    // Who asks on this connection, built once (the peer's names filled in
    // before it is polled): every call is decided with it, uncopied.
    RequestContext context;
    varlink::FrameReader reader;
    struct Outgoing {
        std::string bytes;
        std::vector<HandedFd> fds;  // sent with the first byte, then dropped
        std::size_t offset = 0;
    };
    std::deque<Outgoing> out;
    std::size_t queued_bytes = 0;
    std::size_t queued_fds = 0;
    TokenBucket requests;               // the per-connection request rate
    Clock::time_point partial_since{};  // when the unfinished message began
    Clock::time_point output_since{};   // when replies began waiting for the peer to read
    Clock::time_point last_active = Clock::now();  // last bytes from the peer
    bool close_after_flush = false;
    // Calls are read with MSG_PEEK (SO_PEEK_OFF set at accept) and taken
    // off the socket later: `unconsumed` bytes were read but still sit in
    // the kernel, since `unconsumed_since`. Without SO_PEEK_OFF, plain reads.
    bool peeks = false;
    std::size_t unconsumed = 0;
    Clock::time_point unconsumed_since{};
    // Edge-triggered polling reports only new input: whether the last read
    // saw the socket empty, or the connection must be read again unasked.
    bool drained = true;
    // Polled only once the peer's names are known: until then its bytes
    // wait in the kernel's socket buffer (see PeerNameResolver).
    bool registered = false;
    std::uint64_t serial = 0;  // tells a reused fd number from the connection a lookup was for
    std::uint32_t interest = 0;

    Connection(UniqueFd f, policy::Peer p, std::size_t max_message, double burst)
        : fd(std::move(f)), reader(max_message), requests(burst, Clock::now())
    {
        context.transport = TransportKind::Socket;
        context.peer = std::move(p);
    }
};

VarlinkServer::VarlinkServer(Broker& broker, UniqueFd listen_fd, Limits limits)
    : broker_(broker), listen_fd_(std::move(listen_fd)), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)), limits_(limits)
{
}

VarlinkServer::~VarlinkServer() = default;

Result<UniqueFd> VarlinkServer::listen_at(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return fail(ErrorCode::InvalidParameter, "socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return fail(ErrorCode::UnsafeFile, path + " exists and is not a socket; refusing to replace it");
        ::unlink(path.c_str());
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        return fail(make_system_error("socket", errno));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return fail(make_system_error("cannot bind " + path, errno));
    if (::chmod(path.c_str(), 0666) != 0)
        return fail(make_system_error("cannot chmod " + path, errno));
    if (::listen(fd.get(), 128) != 0)
        return fail(make_system_error("listen", errno));
    return fd;
}

void VarlinkServer::accept_all()
{
    // Bounded per wakeup: a uid connecting and closing in a loop must not
    // keep the loop here while other connections wait to be read.
    for (unsigned accepted = 0; accepted < limits_.max_accepts_per_wakeup; ++accepted) {
        UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                log_caller_warning("accept-out-of-fds", "out of file descriptors; not accepting for a moment");
                pause_accepting();
            }
            return;
        }
        // Ids only: names are looked up (and cached) at the first request.
        auto peer = peer_credentials_from_socket(fd.get());
        if (!peer)
            continue;
        if (connections_.size() >= limits_.max_connections_total)
            evict_idle_connection();
        if (connections_.size() >= limits_.max_connections_total ||
            (per_uid_.contains(peer->uid) && per_uid_[peer->uid].connections >= limits_.max_connections_per_uid)) {
            // Say why before closing, without waiting for the peer.
            auto msg = varlink::encode_message(
                varlink::make_error_reply(ErrorCode::LimitExceeded, "too many connections for uid " + std::to_string(peer->uid)));
            if (msg)
                (void)send_with_fds(fd.get(), *msg, {});
            auto uid = std::to_string(peer->uid);
            log_caller_warning("connection-limit uid=" + uid, "refused a connection from uid " + uid +
                                                                 ": too many connections, ignoring");
            continue;
        }
        int raw = fd.get();
        auto conn = std::make_unique<Connection>(std::move(fd), std::move(*peer), limits_.max_message_bytes,
                                                 static_cast<double>(limits_.requests_per_second));
        conn->pidfd = peer_pidfd(raw);
        conn->context.caller_pidfd = conn->pidfd.get();
        const int zero = 0;
        conn->peeks = ::setsockopt(raw, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
        conn->serial = ++next_serial_;
        per_uid_[conn->context.peer.uid].connections++;
        auto& c = *conn;
        connections_.emplace(raw, std::move(conn));
        // Names from the cache, or from a worker: an accept never waits on NSS.
        if (resolve_peer_names_cached(c.context.peer))
            register_connection(c);
        else
            names_.submit(c.serial, c.context.peer);
    }
}

void VarlinkServer::register_connection(Connection& c)
{
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | edge_trigger(c);
    ev.data.u64 = static_cast<std::uint64_t>(c.fd.get());
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
        close_connection(c.fd.get());
        return;
    }
    c.interest = ev.events;
    c.registered = true;
}

void VarlinkServer::names_resolved()
{
    for (auto& [serial, peer] : names_.take_done()) {
        auto it = std::find_if(connections_.begin(), connections_.end(),
                               [serial = serial](const auto& kv) { return kv.second->serial == serial; });
        if (it == connections_.end() || it->second->registered)
            continue;  // closed (evicted) meanwhile
        it->second->context.peer = std::move(peer);
        register_connection(*it->second);
    }
}

// At the total cap, the connection that has been idle longest (nothing
// buffered, nothing queued) makes room: held-open idle connections from many
// uids cannot lock everyone else out. A client must expect an idle
// connection to be closed and reconnect.
void VarlinkServer::evict_idle_connection()
{
    int victim = -1;
    Clock::time_point oldest = Clock::time_point::max();
    for (const auto& [fd, c] : connections_) {
        bool idle = c->out.empty() && c->reader.buffered_bytes() == 0 && !c->close_after_flush;
        if (idle && c->last_active < oldest) {
            oldest = c->last_active;
            victim = fd;
        }
    }
    if (victim >= 0)
        close_connection(victim);
}

void VarlinkServer::close_connection(int fd)
{
    auto it = connections_.find(fd);
    if (it == connections_.end())
        return;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    auto uid = it->second->context.peer.uid;
    release_queued_fds(*it->second, it->second->queued_fds);
    if (auto usage = per_uid_.find(uid); usage != per_uid_.end() && --usage->second.connections == 0)
        per_uid_.erase(usage);
    if (it->second->unconsumed > 0)
        --connections_unconsumed_;
    connections_.erase(it);
}

bool VarlinkServer::may_queue(const Connection& c) const
{
    auto usage = per_uid_.find(c.context.peer.uid);
    std::size_t uid_fds = usage == per_uid_.end() ? 0 : usage->second.queued_fds;
    return c.queued_bytes < limits_.max_queued_reply_bytes && c.queued_fds < limits_.max_queued_fds_per_connection &&
           uid_fds < limits_.max_queued_fds_per_uid && queued_fds_total_ < limits_.max_queued_fds_total;
}

// When queues shrink, connections that were paused for another
// connection's budget (same uid, or the total) may read again.
void VarlinkServer::refresh_all_interest()
{
    if (!queues_shrank_)
        return;
    queues_shrank_ = false;
    for (auto& [fd, c] : connections_) {
        if (!c->registered)
            continue;
        if (!c->close_after_flush && may_queue(*c) && c->reader.buffered_bytes() > 0) {
            process_frames(*c);  // complete requests that waited for budget
            flush(*c);
        }
        update_interest(*c);
        settle(fd, *c);
    }
}

void VarlinkServer::pause_accepting()
{
    epoll_event ev{};
    ev.data.u64 = kListenTag;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
    accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
}

void VarlinkServer::resume_accepting_if_due()
{
    if (accept_paused_until_ == Clock::time_point{} || Clock::now() < accept_paused_until_)
        return;
    accept_paused_until_ = {};
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenTag;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
}

void VarlinkServer::update_interest(Connection& c)
{
    std::uint32_t want = EPOLLRDHUP | edge_trigger(c);
    // Backpressure: a client that leaves replies unread is not read from.
    if (!c.close_after_flush && may_queue(c))
        want |= EPOLLIN;
    if (!c.out.empty())
        want |= EPOLLOUT;
    if (want == c.interest)
        return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = static_cast<std::uint64_t>(c.fd.get());
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    c.interest = want;
}

void VarlinkServer::queue_response(Connection& c, nlohmann::json message)
{
    queue_encoded(c, encode_for_socket({std::move(message), {}, true}));
}

void VarlinkServer::queue_encoded(Connection& c, EncodedResponse resp)
{
    c.queued_bytes += resp.bytes.size();
    c.queued_fds += resp.fds.size();
    per_uid_[c.context.peer.uid].queued_fds += resp.fds.size();
    queued_fds_total_ += resp.fds.size();
    c.out.push_back({std::move(resp.bytes), std::move(resp.fds), 0});
}

void VarlinkServer::release_queued_fds(Connection& c, std::size_t count)
{
    if (count == 0)
        return;
    c.queued_fds -= count;
    queued_fds_total_ -= count;
    if (auto usage = per_uid_.find(c.context.peer.uid); usage != per_uid_.end())
        usage->second.queued_fds -= std::min(usage->second.queued_fds, count);
    queues_shrank_ = true;
}

void VarlinkServer::flush(Connection& c)
{
    bool progressed = false;
    while (!c.out.empty()) {
        auto& o = c.out.front();
        fd_numbers_.clear();
        for (const auto& fd : o.fds)
            fd_numbers_.push_back(fd.get());
        auto sent = send_with_fds(c.fd.get(), std::string_view(o.bytes).substr(o.offset), fd_numbers_);
        if (!sent) {
            if (would_block(sent.error())) {
                // Stalled means no progress for the timeout, not "never
                // caught up": a reader that keeps reading keeps its connection.
                if (progressed || c.output_since == Clock::time_point{})
                    c.output_since = Clock::now();
                return;
            }
            // The peer is gone: drop what it will never read.
            for (auto& pending : c.out)
                release_queued_fds(c, pending.fds.size());
            c.out.clear();
            c.queued_bytes = 0;
            c.close_after_flush = true;
            break;
        }
        progressed = true;
        // The fds went with the first byte; our copies close now.
        release_queued_fds(c, o.fds.size());
        o.fds.clear();
        o.offset += *sent;
        c.queued_bytes -= *sent;
        if (o.offset == o.bytes.size())
            c.out.pop_front();
    }
    c.output_since = Clock::time_point{};
}

void VarlinkServer::process_frames(Connection& c)
{
    while (!c.close_after_flush && may_queue(c)) {
        auto frame = c.reader.next_frame();
        if (!frame) {
            queue_response(c, varlink::make_error_reply(frame.error().code, frame.error().message));
            c.close_after_flush = true;
            return;
        }
        if (!frame->has_value())
            break;
        // Parsed once: the fast codec for a plain AcquireProgram, the
        // general parser for everything else.
        auto parsed = parse_frame(**frame);
        if (!parsed) {
            queue_response(c, varlink::make_error_reply(parsed.error().code, parsed.error().message));
            c.close_after_flush = true;
            return;
        }
        ++frames_read_;
        if (!c.requests.take(limits_.requests_per_second, turn_started_)) {
            if (!parsed->oneway())
                queue_response(c, varlink::make_error_reply(ErrorCode::LimitExceeded,
                                                            "more than " + std::to_string(limits_.requests_per_second) +
                                                                " requests per second on this connection"));
            continue;
        }
        // The method table checks it and the Broker decides.
        auto resp = answer_frame(broker_, c.context, *parsed, &replies_);
        if (resp.reply)
            queue_encoded(c, std::move(resp));
    }
    c.partial_since = c.reader.buffered_bytes() > 0 ? (c.partial_since == Clock::time_point{} ? turn_started_ : c.partial_since)
                                                    : Clock::time_point{};
}

// A peeked call stays on the socket until consume_peeked(): taking it off
// frees send space on the caller's socket, and the kernel then wakes
// whoever sleeps on it, so a caller blocked in recvmsg for the reply would
// wake for nothing, and on one CPU preempt the loop. Consumed in batches,
// that happens once per kPeekedBytesBeforeConsume instead of once per call.
// The waiting bytes are charged to the caller's send buffer, not to the
// daemon, and wait kPeekedConsumeAfter at most (a caller with a tiny send
// buffer waits for space that long).
void VarlinkServer::on_readable(Connection& c, bool peer_closed)
{
    char buf[16384];
    c.drained = false;
    // Bounded per wakeup so one chatty client cannot monopolize the loop.
    for (int round = 0; round < 8 && !c.close_after_flush && may_queue(c); ++round) {
        auto r = c.peeks ? peek_with_fds(c.fd.get(), buf, 0) : recv_with_fds(c.fd.get(), buf, 0);
        if (!r) {
            if (would_block(r.error())) {
                c.drained = true;
                break;
            }
            // Any fd sent to us is refused (and none was installed).
            queue_response(c, varlink::make_error_reply(ErrorCode::ProtocolError, r.error().message));
            c.close_after_flush = true;
            break;
        }
        if (r->bytes == 0) {
            c.close_after_flush = true;  // EOF: answer what was complete, then close
            break;
        }
        if (c.peeks) {
            if (c.unconsumed == 0) {
                c.unconsumed_since = turn_started_;
                ++connections_unconsumed_;
            }
            c.unconsumed += r->bytes;
        }
        c.last_active = turn_started_;
        auto fed = c.reader.feed(std::string_view(buf, r->bytes));
        if (!fed) {
            queue_response(c, varlink::make_error_reply(fed.error().code, fed.error().message));
            c.close_after_flush = true;
            break;
        }
        process_frames(c);
        // A short read drained the socket: no second read to learn it (one
        // syscall per request less); what comes later is a new edge. A
        // peer that closed meanwhile is read to its EOF, which is not.
        if (r->bytes < sizeof buf && !peer_closed) {
            c.drained = true;
            break;
        }
    }
    process_frames(c);
}

void VarlinkServer::consume_peeked(Connection& c)
{
    char scratch[16384];
    while (c.unconsumed > 0) {
        const ssize_t n = ::recv(c.fd.get(), scratch, std::min(c.unconsumed, sizeof scratch), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {  // the peeked bytes are gone: nothing can be trusted to follow
            c.close_after_flush = true;
            break;
        }
        c.unconsumed -= std::min(c.unconsumed, static_cast<std::size_t>(n));
    }
    c.unconsumed = 0;
    c.unconsumed_since = {};
    --connections_unconsumed_;
}

// After a connection was served: its peeked bytes taken off in a batch,
// and a connection whose read stopped before the socket was empty (the
// per-wakeup bound, a budget that freed up since) queued to be read again,
// as no edge will come for what is already there.
void VarlinkServer::settle(int fd, Connection& c)
{
    if (c.unconsumed >= kPeekedBytesBeforeConsume)
        consume_peeked(c);
    if (c.peeks && !c.drained && !c.close_after_flush && (c.interest & EPOLLIN)) {
        c.drained = true;  // queued once
        read_again_.push_back(fd);
    }
}

void VarlinkServer::serve(int fd, Connection& c, std::uint32_t events)
{
    read_if_ready(c, events);
    finish(fd, c, events);
}

void VarlinkServer::read_if_ready(Connection& c, std::uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        on_readable(c, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
}

void VarlinkServer::finish(int fd, Connection& c, std::uint32_t events)
{
    flush(c);
    if ((c.close_after_flush && c.out.empty()) || (events & (EPOLLHUP | EPOLLERR))) {
        close_connection(fd);
        return;
    }
    update_interest(c);
    settle(fd, c);
}

std::uint32_t VarlinkServer::edge_trigger(const Connection& c)
{
    return c.peeks ? static_cast<std::uint32_t>(EPOLLET) : 0u;
}

void VarlinkServer::sweep_timeouts()
{
    const auto now = turn_started_;
    // Every connection is looked at: once a millisecond is close enough
    // for timeouts of seconds, and a busy loop does not walk them per call.
    if (now < next_sweep_)
        return;
    next_sweep_ = now + std::chrono::milliseconds(1);
    std::vector<int> stale;
    // A peer that stalls mid-message, or stops reading its replies, loses
    // its connection after the timeout; it only ever held its own slot.
    auto expired = [&](Clock::time_point since) {
        return since != Clock::time_point{} && now - since > limits_.partial_message_timeout;
    };
    for (auto& [fd, c] : connections_) {
        if (expired(c->partial_since) || expired(c->output_since))
            stale.push_back(fd);
        else if (c->unconsumed > 0 && now - c->unconsumed_since >= kPeekedConsumeAfter)
            consume_peeked(*c);
    }
    for (int fd : stale)
        close_connection(fd);
}

// A turn that read one call from one caller and nothing else is often
// followed by that caller's next call, already on its socket: where the
// caller shares the loop's CPU, the reply ran it and it asked again before
// the loop went on. That call is read at once instead of after an
// epoll_wait (one syscall less per call). The edge epoll queued for it
// stays queued, so nothing is missed: the next epoll_wait reports it, and
// a read finds what is left. Bounded by kReadAheadTurns turns in a row;
// a caller sending several calls at once is polled as before (each such
// turn reads more than one call). A read-ahead that finds nothing (a
// caller on another CPU has not asked yet) pauses it for
// kReadAheadPauseTurns turns, so it costs a wasted read that often at most.
void VarlinkServer::choose_read_ahead(bool was_read_ahead, std::uint64_t calls_read)
{
    ahead_.fd = -1;
    if (was_read_ahead && calls_read == 0) {
        ahead_.turns = 0;
        ahead_.paused = kReadAheadPauseTurns;
        return;
    }
    if (ahead_.paused > 0) {
        --ahead_.paused;
        ahead_.turns = 0;
        return;
    }
    const Connection* c = nullptr;
    if (ready_.size() == 1 && calls_read == 1 && read_again_.empty() && ahead_.turns < kReadAheadTurns)
        if (auto it = connections_.find(ready_.front().fd);
            it != connections_.end() && it->second->serial == ready_.front().serial)
            c = it->second.get();
    if (!c || !c->registered || c->close_after_flush || !(c->interest & EPOLLIN)) {
        ahead_.turns = 0;
        return;
    }
    ahead_.fd = ready_.front().fd;
    ahead_.serial = ready_.front().serial;
    ++ahead_.turns;
}

Result<void> VarlinkServer::run(int signal_fd, const std::function<bool(int)>& on_signal)
{
    if (!epoll_fd_)
        return fail(make_system_error("epoll_create1", errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenTag;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, listen_fd_.get(), &ev) != 0)
        return fail(make_system_error("epoll_ctl(listen)", errno));
    if (signal_fd >= 0) {
        ev.data.u64 = kSignalTag;
        if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, signal_fd, &ev) != 0)
            return fail(make_system_error("epoll_ctl(signalfd)", errno));
    }
    ev.data.u64 = kNamesTag;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, names_.ready_fd(), &ev) != 0)
        return fail(make_system_error("epoll_ctl(names)", errno));
    if (int exits = broker_.caller_exits_fd(); exits >= 0) {
        ev.data.u64 = kCallerExitsTag;
        if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, exits, &ev) != 0)
            return fail(make_system_error("epoll_ctl(caller watch)", errno));
    }
    epoll_event events[64];
    for (;;) {
        // Wake often enough to enforce the stalled-client timeout near its value.
        int wait_ms = static_cast<int>(std::clamp<long long>(limits_.partial_message_timeout.count() / 4, 10, 1000));
        if (accept_paused_until_ != Clock::time_point{})
            wait_ms = std::min(wait_ms, 50);
        if (connections_unconsumed_ > 0)
            wait_ms = std::min(wait_ms, static_cast<int>(kPeekedConsumeAfter.count()));
        if (!read_again_.empty())
            wait_ms = 0;
        const bool read_ahead = ahead_.fd >= 0;
        int n = 1;
        if (read_ahead) {
            events[0].data.u64 = static_cast<std::uint64_t>(ahead_.fd);
            events[0].events = EPOLLIN;
        } else {
            n = ::epoll_wait(epoll_fd_.get(), events, 64, wait_ms);
        }
        turn_started_ = Clock::now();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(make_system_error("epoll_wait", errno));
        }
        const std::uint64_t frames_before = frames_read_;
        for (int i = 0; i < n; ++i) {
            auto tag = events[i].data.u64;
            if (tag == kListenTag) {
                accept_all();
                continue;
            }
            if (tag == kNamesTag) {
                names_resolved();
                continue;
            }
            if (tag == kCallerExitsTag) {
                broker_.dispatch_caller_exits();
                continue;
            }
            if (tag == kSignalTag) {
                signalfd_siginfo si{};
                while (::read(signal_fd, &si, sizeof si) == sizeof si)
                    if (!on_signal(static_cast<int>(si.ssi_signo)))
                        return {};
                continue;
            }
            int fd = static_cast<int>(tag);
            auto it = connections_.find(fd);
            // Not yet registered: the event is a closed connection's whose
            // number a new one took this turn (an eviction at the total
            // cap); that one must not be read before its names are known.
            if (it == connections_.end() || !it->second->registered ||
                (read_ahead && it->second->serial != ahead_.serial))
                continue;
            read_if_ready(*it->second, events[i].events);
            ready_.push_back({fd, it->second->serial, events[i].events});
        }
        const std::uint64_t calls_read = frames_read_ - frames_before;
        // Every call of this turn read and answered first, then the replies
        // sent back to back: the clients they wake on the other CPU are
        // woken together, which spares inter-processor interrupts there.
        for (const auto& r : ready_)
            if (auto it = connections_.find(r.fd); it != connections_.end() && it->second->serial == r.serial)
                finish(r.fd, *it->second, r.events);
        // Read before polling again: what they hold brings no new edge. A
        // number reused by a new connection since only costs it a read.
        for (int fd : std::exchange(read_again_, {}))
            if (auto it = connections_.find(fd); it != connections_.end() && it->second->registered)
                serve(fd, *it->second, EPOLLIN);
        choose_read_ahead(read_ahead, calls_read);
        ready_.clear();
        // Limits follow the settings of the current policy (SIGHUP, Reload).
        if (auto snap = broker_.snapshot(); snap != limits_source_) {
            limits_ = Limits(snap->settings);
            limits_source_ = std::move(snap);
            queues_shrank_ = true;  // budgets may have grown
        }
        sweep_timeouts();
        refresh_all_interest();
        resume_accepting_if_due();
    }
}

}  // namespace bpfbroker::brokerd
