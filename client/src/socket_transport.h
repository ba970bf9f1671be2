// Client transport over the direct Varlink socket: one blocking connection,
// one call at a time, replies read with their fds (MSG_CMSG_CLOEXEC). The
// AcquireProgram messages take the fast codec (acquire_codec.h); the other
// methods' replies are parsed once with nlohmann-json.
#pragma once

#include <bpfbroker/client.h>

#include "wire/acquire_codec.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace bpfbroker {

class SocketTransport final : public Transport {
public:
    static Result<std::unique_ptr<SocketTransport>> connect(const std::string& path, std::chrono::milliseconds timeout);

    Result<Program> acquire(std::string_view name, const AcquireOptions& options, bool with_options) override;
    Result<std::vector<ProgramEntry>> list_programs() override;
    Result<std::vector<Feature>> features() override;
    Result<std::string> metrics() override;
    Result<std::string> approve(std::string_view program, const ApproveOptions& options) override;
    Result<RevokeResult> revoke(std::string_view program) override;
    Result<void> reload() override;
    Result<Program> attach_ring(std::string_view name, int ring_fd, const std::map<std::string, std::uint64_t>& ring,
                                const AcquireOptions& options) override;

private:
    // One reply frame (without its NUL) and the fds that came with it.
    struct Frame {
        std::string text;
        std::vector<UniqueFd> fds;
    };

    SocketTransport(UniqueFd fd, std::chrono::milliseconds timeout) : fd_(std::move(fd)), timeout_(timeout) {}
    // Sends an encoded call and reads its reply frame.
    Result<Frame> round_trip(Result<std::string> request);
    Result<Frame> round_trip(std::string_view request);
    Result<Frame> exchange(std::string_view request, bool& in_step);
    // A call of `member` with JSON parameters; the reply's parameters, or the
    // daemon's error.
    Result<nlohmann::json> call_json(std::string_view member, const nlohmann::json& parameters);
    // The Program an AcquireProgram-shaped reply (program/links, maps, info) hands out.
    Result<Program> take_program(Frame& frame);

    // Waits until the reply can be read, at most until `deadline`; false on
    // a timeout. A blocked recvmsg would be woken for nothing when the
    // daemon reads the call (the kernel wakes a unix socket's sleepers when
    // its peer frees send space); poll waits for input only.
    [[nodiscard]] bool wait_readable(std::chrono::steady_clock::time_point deadline) const;

    UniqueFd fd_;
    std::chrono::milliseconds timeout_;
    // The last acquire call and its bytes: a client acquiring one program
    // again sends the same call, encoded once.
    std::optional<varlink::AcquireCall> last_call_;
    std::string last_call_bytes_;
    // The last acquire reply and what it decoded to: a warm acquire of a
    // shared program is answered with the same bytes every time, and
    // decoding is a function of the bytes alone, so those are decoded once.
    // Its info is last_info_, shared by the Programs made from it.
    std::string last_reply_text_;
    std::optional<varlink::AcquireReply> last_reply_;
    std::shared_ptr<const ProgramInfo> last_info_;
};

}  // namespace bpfbroker
