// Client transport over the direct Varlink socket: one blocking connection,
// one call at a time, replies read with their fds (MSG_CMSG_CLOEXEC).
#pragma once

#include <bpfbroker/client.h>

#include <chrono>
#include <string>

namespace bpfbroker {

class SocketTransport final : public Transport {
public:
    static Result<std::unique_ptr<SocketTransport>> connect(const std::string& path, std::chrono::milliseconds timeout);
    Result<Reply> call(std::string_view member, const std::string& parameters_json) override;

private:
    explicit SocketTransport(UniqueFd fd) : fd_(std::move(fd)) {}
    Result<Reply> exchange(std::string_view member, const std::string& parameters_json, bool& in_step);
    UniqueFd fd_;
};

}  // namespace bpfbroker
