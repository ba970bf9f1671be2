// The bpfbroker client: ask bpfbrokerd for a program and receive owning fds
// for it and its maps. The same API works over the direct Varlink socket and
// over D-Bus; the daemon identifies the caller from the transport, so there
// is nothing to authenticate here.
//
//   auto client = bpfbroker::Client::connect_socket();
//   if (!client) { ... client.error().describe() ... }
//   auto prog = client->acquire("udp_stats");
//   // prog->fd(): the program; prog->map("stats"): a read-only map fd
//   auto stats = client->acquire("uring_stats", {.parameters = {}});
//   // broker-attached: stats->links() holds the link fds, stats->fd() is empty
//   auto nops = client->attach_ring("ring_nops", ring_fd, params, {.parameters = {{"total", 100}}});
//   // io_uring_ops (Linux 7.1): runs inside this process's ring; one link
#pragma once

#include <bpfbroker/interface.h>  // kDefaultSocketPath: where bpfbrokerd listens
#include <bpfbroker/program_info.h>
#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct io_uring_params;  // <linux/io_uring.h>

namespace bpfbroker {

// What the caller chooses in a request, within the manifest's bounds.
struct AcquireOptions {
    std::map<std::string, std::uint64_t> parameters;  // .rodata variable -> value (bools are 0/1)
};

// An acquired program: owns the program fd (client-attached programs) or
// the link fds (broker-attached programs: closing a link detaches it), and
// the fds of the maps the manifest lets the client see. Closing them
// (destroying this) lets the kernel free a per-client instance once nothing
// is attached.
class Program {
public:
    Program(ProgramInfo info, UniqueFd program, std::map<std::string, UniqueFd> maps,
            std::map<std::string, UniqueFd> links = {})
        : Program(Shared{}, std::make_shared<const ProgramInfo>(std::move(info)), std::move(program), std::move(maps),
                  std::move(links))
    {
    }
    [[nodiscard]] const ProgramInfo& info() const noexcept { return info_ ? *info_ : moved_from_info(); }
    // Empty for a broker-attached program: its holder gets links, never the program.
    [[nodiscard]] const UniqueFd& fd() const noexcept { return program_; }
    // Program name -> link fd; empty for a client-attached program.
    [[nodiscard]] const std::map<std::string, UniqueFd>& links() const noexcept { return links_; }
    // nullptr when the program has no such map or the client may not see it.
    [[nodiscard]] const UniqueFd* map(std::string_view name) const;
    [[nodiscard]] const std::map<std::string, UniqueFd>& maps() const noexcept { return maps_; }
    // Gives the fds away (e.g. to keep them across exec).
    [[nodiscard]] UniqueFd release_program() { return std::move(program_); }
    [[nodiscard]] std::map<std::string, UniqueFd> release_maps() { return std::move(maps_); }
    [[nodiscard]] std::map<std::string, UniqueFd> release_links() { return std::move(links_); }

private:
    friend class SocketTransport;
    // `info` shared with other Programs (the socket transport's repeated
    // reply). Private, and behind a tag that takes one more argument than
    // the public constructor, so that no public call becomes ambiguous
    // (`Program({}, fd, maps)`) or may pass a null info.
    struct Shared {};
    Program(Shared, std::shared_ptr<const ProgramInfo> info, UniqueFd program, std::map<std::string, UniqueFd> maps,
            std::map<std::string, UniqueFd> links)
        : info_(std::move(info)), program_(std::move(program)), maps_(std::move(maps)), links_(std::move(links))
    {
    }
    static const ProgramInfo& moved_from_info() noexcept;  // an empty one: a moved-from Program has no info
    std::shared_ptr<const ProgramInfo> info_;
    UniqueFd program_;
    std::map<std::string, UniqueFd> maps_;
    std::map<std::string, UniqueFd> links_;
};

struct ProgramEntry {
    std::string name;
    std::string version;
    std::string description;
    std::string state;       // "valid", "invalid", "untrusted-signer", "object-hash-mismatch"
    std::string instance;
    bool allowed = false;    // whether this caller may acquire it now
    bool needs_polkit = false;
    bool cut_live = false;   // a revocation reaches live instances (a guard, or broker-attached)
    std::string error;       // ErrorCode name when not allowed
    std::string reason;
};

// What Revoke did. The instance counts are absent where the daemon or the
// transport does not report them (D-Bus Revoke returns the approvals only).
struct RevokeResult {
    unsigned removed_approvals = 0;
    std::optional<unsigned> cut_instances;    // live instances reached (guard set or link detached)
    std::optional<unsigned> uncut_instances;  // live instances that could not be (no guard)
};

struct Feature {
    std::string name;
    bool available = false;
    std::string detail;
};

struct ApproveOptions {
    std::vector<std::string> users;   // names or decimal uids
    std::vector<std::string> groups;  // names or decimal gids
    bool anyone = false;
    bool polkit = false;              // also require polkit (org.bpfbroker.acquire)
    std::string signer;               // key id: grant every version it signs (empty: this manifest)
};

// The daemon's methods, one call each, implemented per transport (the
// Varlink socket, D-Bus). Each decodes its reply once, straight into these
// types; daemon errors come back as Errors.
class Transport {
public:
    virtual ~Transport() = default;
    // `with_options`: the caller used the options overload (D-Bus has a
    // separate method for it; the socket has one method for both).
    virtual Result<Program> acquire(std::string_view name, const AcquireOptions& options, bool with_options) = 0;
    virtual Result<std::vector<ProgramEntry>> list_programs() = 0;
    virtual Result<std::vector<Feature>> features() = 0;
    virtual Result<std::string> metrics() = 0;
    virtual Result<std::string> approve(std::string_view program, const ApproveOptions& options) = 0;
    virtual Result<RevokeResult> revoke(std::string_view program) = 0;
    virtual Result<void> reload() = 0;
    // AttachRing: `ring` holds flags, sq_entries, cq_entries, cq_head_off,
    // cq_tail_off and cqes_off. Socket only: the broker copies the ring with
    // pidfd_getfd on the connection's pidfd, which D-Bus has no way to give.
    virtual Result<Program> attach_ring(std::string_view name, int ring_fd,
                                        const std::map<std::string, std::uint64_t>& ring,
                                        const AcquireOptions& options);
};

class Client {
public:
    // Connects to the direct Varlink socket.
    static Result<Client> connect_socket(std::string path = std::string(kDefaultSocketPath),
                                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

    // Connects over D-Bus to org.bpfbroker.Broker1 on the system bus
    // (DBUS_SYSTEM_BUS_ADDRESS, when set, says where that bus is).
    static Result<Client> connect_dbus(std::chrono::milliseconds timeout = std::chrono::seconds(60));

    explicit Client(std::unique_ptr<Transport> transport) : transport_(std::move(transport)) {}

    Result<Program> acquire(std::string_view name);
    // With caller-chosen parameters; also the way to acquire a broker-attached
    // program over D-Bus (AcquireProgramWithOptions).
    Result<Program> acquire(std::string_view name, const AcquireOptions& options);
    Result<std::vector<ProgramEntry>> list_programs();
    Result<std::vector<Feature>> features();
    // The daemon's counters as OpenMetrics text (GetMetrics), ending in "# EOF".
    Result<std::string> metrics();
    // Admin calls: root on the socket; root or polkit org.bpfbroker.manage on D-Bus.
    Result<std::string> approve(std::string_view program, const ApproveOptions& options);  // -> manifest sha256 (or signer)
    Result<RevokeResult> revoke(std::string_view program);
    Result<void> reload();

    // Runs io_uring_ops program `name` (Linux 7.1 io_uring_bpf_ops) inside
    // this process's ring `ring_fd`, which io_uring_setup made with `params`
    // (IORING_SETUP_DEFER_TASKRUN, not SQPOLL or IOPOLL). The result holds
    // the one link (closing it, or the ring's exit, ejects the program) and
    // the maps; never a program fd. Socket transport only.
    Result<Program> attach_ring(std::string_view name, int ring_fd, const io_uring_params& params,
                                const AcquireOptions& options = {});

private:
    Result<Program> checked_acquire(std::string_view name, const AcquireOptions& options, bool with_options);
    std::unique_ptr<Transport> transport_;
};

}  // namespace bpfbroker
