// Varlink socket transport for Client; see socket_transport.h.
#include "socket_transport.h"

#include "wire/fd_passing.h"
#include "wire/varlink_framing.h"

#include <bpfbroker/error_names.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace bpfbroker {

namespace {

// A reply never carries more fds than a program plus its maps.
constexpr std::size_t kMaxReplyFds = 64;

}  // namespace

Result<std::unique_ptr<SocketTransport>> SocketTransport::connect(const std::string& path,
                                                                  std::chrono::milliseconds timeout)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return fail(ErrorCode::InvalidParameter, "socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        return fail(make_system_error("socket", errno));
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return fail(make_system_error("cannot connect to bpfbrokerd at " + path, errno));
    return std::unique_ptr<SocketTransport>(new SocketTransport(std::move(fd)));
}

Result<Transport::Reply> SocketTransport::call(std::string_view member, const std::string& parameters_json)
{
    // After a call failed part-way (a timeout, a broken frame), a late reply
    // may still arrive; reading it as the answer to the next call would hand
    // the caller the wrong program. Such a connection is never used again.
    if (!fd_)
        return fail(ErrorCode::ProtocolError, "the connection to bpfbrokerd was closed after an earlier failure; connect again");
    bool in_step = false;
    auto reply = exchange(member, parameters_json, in_step);
    if (!in_step)
        fd_.reset();
    return reply;
}

// `in_step` is set when the connection is ready for another call: a whole
// reply (success or error) was read, or nothing was sent.
Result<Transport::Reply> SocketTransport::exchange(std::string_view member, const std::string& parameters_json,
                                                   bool& in_step)
{
    in_step = true;
    auto params = nlohmann::json::parse(parameters_json, nullptr, false);
    if (params.is_discarded() || !params.is_object())
        return fail(ErrorCode::InvalidParameter, "parameters are not a JSON object");
    auto bytes = varlink::encode_message(
        varlink::make_call(std::string(kVarlinkInterface) + "." + std::string(member), std::move(params)));
    if (!bytes)
        return fail(std::move(bytes).error());
    in_step = false;  // from here until a whole reply is read
    if (auto sent = send_all_with_fds(fd_.get(), *bytes, {}); !sent)
        return fail(std::move(sent).error());

    varlink::FrameReader reader(varlink::kMaxReplySize);
    Reply reply;
    char buf[65536];
    for (;;) {
        auto msg = reader.next_message();
        if (!msg)
            return fail(std::move(msg).error());
        if (msg->has_value()) {
            auto parsed = varlink::parse_reply(**msg);
            if (!parsed)
                return fail(std::move(parsed).error());
            in_step = true;
            if (parsed->error)
                return fail(varlink::error_from_reply(*parsed));
            reply.json = parsed->parameters.dump();
            return reply;
        }
        auto r = recv_with_fds(fd_.get(), buf, kMaxReplyFds);
        if (!r) {
            if (r.error().sys_errno == EAGAIN)
                return fail(make_system_error("bpfbrokerd did not answer in time", ETIMEDOUT));
            return fail(std::move(r).error());
        }
        if (r->bytes == 0 && r->fds.empty())
            return fail(ErrorCode::ProtocolError, "bpfbrokerd closed the connection without a reply");
        for (auto& fd : r->fds)
            reply.fds.push_back(std::move(fd));
        if (reply.fds.size() > kMaxReplyFds)
            return fail(ErrorCode::ProtocolError, "reply carried too many fds");
        if (auto fed = reader.feed(std::string_view(buf, r->bytes)); !fed)
            return fail(std::move(fed).error());
    }
}

Result<Client> Client::connect_socket(std::string path, std::chrono::milliseconds timeout)
{
    auto t = SocketTransport::connect(path, timeout);
    if (!t)
        return fail(std::move(t).error());
    return Client(std::move(*t));
}

}  // namespace bpfbroker
