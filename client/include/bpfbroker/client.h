// The bpfbroker client: ask bpfbrokerd for a program and receive owning fds
// for it and its maps. The same API works over the direct Varlink socket and
// over D-Bus; the daemon identifies the caller from the transport, so there
// is nothing to authenticate here.
//
//   auto client = bpfbroker::Client::connect_socket();
//   if (!client) { ... client.error().describe() ... }
//   auto prog = client->acquire("udp_stats");
//   // prog->fd(): the program; prog->map("stats"): a read-only map fd
#pragma once

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker {

// Where bpfbrokerd listens on a normal system.
inline constexpr std::string_view kDefaultSocketPath = "/run/bpfbroker/org.bpfbroker.Broker";

struct ProgramInfo {
    std::string name;
    std::string version;
    std::string type;      // "socket_filter" or "sk_reuseport"
    std::string instance;  // "shared" or "per-client"
    std::uint32_t id = 0;  // kernel program id
    std::string tag;       // kernel program tag, hex
    std::map<std::string, std::string> map_access;  // map name -> "read" / "write"
};

// An acquired program: owns the program fd and the fds of the maps the
// manifest lets the client see. Closing them (destroying this) lets the
// kernel free a per-client instance once nothing is attached.
class Program {
public:
    Program(ProgramInfo info, UniqueFd program, std::map<std::string, UniqueFd> maps)
        : info_(std::move(info)), program_(std::move(program)), maps_(std::move(maps))
    {
    }
    [[nodiscard]] const ProgramInfo& info() const noexcept { return info_; }
    [[nodiscard]] const UniqueFd& fd() const noexcept { return program_; }
    // nullptr when the program has no such map or the client may not see it.
    [[nodiscard]] const UniqueFd* map(std::string_view name) const;
    [[nodiscard]] const std::map<std::string, UniqueFd>& maps() const noexcept { return maps_; }
    // Gives the fds away (e.g. to keep them across exec).
    [[nodiscard]] UniqueFd release_program() { return std::move(program_); }
    [[nodiscard]] std::map<std::string, UniqueFd> release_maps() { return std::move(maps_); }

private:
    ProgramInfo info_;
    UniqueFd program_;
    std::map<std::string, UniqueFd> maps_;
};

struct ProgramEntry {
    std::string name;
    std::string version;
    std::string description;
    std::string state;       // "valid", "invalid", "untrusted-signer", "object-hash-mismatch"
    std::string instance;
    bool allowed = false;    // whether this caller may acquire it now
    bool needs_polkit = false;
    std::string error;       // ErrorCode name when not allowed
    std::string reason;
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

// One request/response exchange with the daemon; implemented per transport.
class Transport {
public:
    virtual ~Transport() = default;
    struct Reply {
        std::string json;            // the reply parameters, as a JSON object text
        std::vector<UniqueFd> fds;   // referenced by index from the parameters
    };
    // `member` is the method name without interface, e.g. "AcquireProgram";
    // `parameters_json` a JSON object text. Daemon errors come back as Errors.
    virtual Result<Reply> call(std::string_view member, const std::string& parameters_json) = 0;
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
    Result<std::vector<ProgramEntry>> list_programs();
    Result<std::vector<Feature>> features();
    // Admin calls: root on the socket; root or polkit org.bpfbroker.manage on D-Bus.
    Result<std::string> approve(std::string_view program, const ApproveOptions& options);  // -> manifest sha256 (or signer)
    Result<unsigned> revoke(std::string_view program);                                      // -> approvals removed
    Result<void> reload();

private:
    std::unique_ptr<Transport> transport_;
};

}  // namespace bpfbroker
