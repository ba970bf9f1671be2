// Varlink socket transport for Client; see socket_transport.h.
#include "socket_transport.h"

#include "wire/acquire_codec.h"
#include "wire/fd_passing.h"
#include "wire/varlink_framing.h"

#include <bpfbroker/error_names.h>

#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>

namespace bpfbroker {

namespace {

using nlohmann::json;

// A reply never carries more fds than a program plus its maps.
constexpr std::size_t kMaxReplyFds = 64;

Unexpected bad_reply(const std::string& why)
{
    return fail(ErrorCode::ProtocolError, "malformed reply from bpfbrokerd: " + why);
}

std::string string_field(const json& j, const char* key)
{
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Takes the received fds the reply names by index, each index at most once.
class FdTaker {
public:
    explicit FdTaker(std::vector<UniqueFd>& fds) : fds_(fds) {}
    Result<UniqueFd> take(std::uint64_t index)
    {
        if (index >= fds_.size() || !used_.insert(index).second)
            return bad_reply("fd index " + std::to_string(index) + " does not name a received fd");
        return std::move(fds_[index]);
    }
    Result<std::map<std::string, UniqueFd>> take(const std::map<std::string, std::uint64_t>& indices)
    {
        std::map<std::string, UniqueFd> out;
        for (const auto& [name, index] : indices) {
            auto fd = take(index);
            if (!fd)
                return fail(std::move(fd).error());
            out.emplace(name, std::move(*fd));
        }
        return out;
    }

private:
    std::vector<UniqueFd>& fds_;
    std::set<std::uint64_t> used_;
};

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
    return std::unique_ptr<SocketTransport>(new SocketTransport(std::move(fd), timeout));
}

Result<SocketTransport::Frame> SocketTransport::round_trip(Result<std::string> request)
{
    if (!request)
        return fail(std::move(request).error());
    return round_trip(std::string_view(*request));
}

Result<SocketTransport::Frame> SocketTransport::round_trip(std::string_view request)
{
    // After a call failed part-way (a timeout, a broken frame), a late reply
    // may still arrive; reading it as the answer to the next call would hand
    // the caller the wrong program. Such a connection is never used again.
    if (!fd_)
        return fail(ErrorCode::ProtocolError, "the connection to bpfbrokerd was closed after an earlier failure; connect again");
    bool in_step = false;
    auto reply = exchange(request, in_step);
    if (!in_step)
        fd_.reset();
    return reply;
}

// `in_step` is set when the connection is ready for another call: a whole
// reply frame was read.
Result<SocketTransport::Frame> SocketTransport::exchange(std::string_view request, bool& in_step)
{
    in_step = false;
    if (auto sent = send_all_with_fds(fd_.get(), request, {}); !sent)
        return fail(std::move(sent).error());

    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    varlink::FrameReader reader(varlink::kMaxReplySize);
    Frame reply;
    char buf[65536];
    for (;;) {
        auto frame = reader.next_frame();
        if (!frame)
            return fail(std::move(frame).error());
        if (frame->has_value()) {
            in_step = true;
            reply.text = std::move(**frame);
            return reply;
        }
        if (!wait_readable(deadline))
            return fail(make_system_error("bpfbrokerd did not answer in time", ETIMEDOUT));
        auto r = recv_with_fds(fd_.get(), buf, kMaxReplyFds);
        if (!r) {
            if (r.error().sys_errno == EAGAIN)
                return fail(make_system_error("bpfbrokerd did not answer in time", ETIMEDOUT));
            return fail(std::move(r).error());
        }
        if (r->bytes == 0 && r->fds.empty())
            return fail(ErrorCode::ProtocolError, "bpfbrokerd closed the connection without a reply");
        if (reply.fds.empty())
            reply.fds = std::move(r->fds);  // the usual one read: no second vector
        else
            for (auto& fd : r->fds)
                reply.fds.push_back(std::move(fd));
        if (reply.fds.size() > kMaxReplyFds)
            return fail(ErrorCode::ProtocolError, "reply carried too many fds");
        if (auto fed = reader.feed(std::string_view(buf, r->bytes)); !fed)
            return fail(std::move(fed).error());
    }
}

bool SocketTransport::wait_readable(std::chrono::steady_clock::time_point deadline) const
{
    // No timeout (zero or less) waits as long as it takes, as SO_RCVTIMEO 0 does.
    const bool forever = timeout_.count() <= 0;
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (!forever && left.count() <= 0)
            return false;
        pollfd p{fd_.get(), POLLIN, 0};
        const int wait_ms = forever ? -1 : static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 1 << 30));
        const int n = ::poll(&p, 1, wait_ms);
        if (n > 0)
            return true;  // readable, or hung up or failed: recvmsg says which
        if (n == 0)
            return false;
        if (errno != EINTR)
            return true;  // recvmsg reports the socket's own error
    }
}

Result<json> SocketTransport::call_json(std::string_view member, const json& parameters)
{
    auto frame = round_trip(varlink::encode_message(
        varlink::make_call(std::string(kVarlinkInterface) + "." + std::string(member), parameters)));
    if (!frame)
        return fail(std::move(frame).error());
    auto message = varlink::parse_message(frame->text);
    if (!message)
        return fail(std::move(message).error());
    auto reply = varlink::parse_reply(*message);
    if (!reply)
        return fail(std::move(reply).error());
    if (reply->error)
        return fail(varlink::error_from_reply(*reply));
    return std::move(reply->parameters);
}

Result<Program> SocketTransport::acquire(std::string_view name, const AcquireOptions& options, bool)
{
    // A call the same as the last (a client acquiring one program again)
    // is sent as the bytes encoded then.
    if (!last_call_ || last_call_->name != name || last_call_->parameters != options.parameters) {
        varlink::AcquireCall call;
        call.name = name;
        call.parameters = options.parameters;
        auto encoded = varlink::encode_acquire_call(call);
        if (!encoded)
            return fail(std::move(encoded).error());
        last_call_ = std::move(call);
        last_call_bytes_ = std::move(*encoded);
    }
    auto frame = round_trip(std::string_view(last_call_bytes_));
    if (!frame)
        return fail(std::move(frame).error());
    return take_program(*frame);
}

Result<Program> SocketTransport::attach_ring(std::string_view name, int ring_fd,
                                             const std::map<std::string, std::uint64_t>& ring,
                                             const AcquireOptions& options)
{
    json parameters = {{"name", std::string(name)}, {"ring_fd", ring_fd}, {"ring", ring}};
    if (!options.parameters.empty())
        parameters["parameters"] = options.parameters;
    auto frame = round_trip(varlink::encode_message(
        varlink::make_call(std::string(kVarlinkInterface) + ".AttachRing", parameters)));
    if (!frame)
        return fail(std::move(frame).error());
    return take_program(*frame);
}

Result<Program> SocketTransport::take_program(Frame& frame)
{
    if (!last_reply_ || frame.text != last_reply_text_) {
        auto decoded = varlink::decode_acquire_reply(frame.text);
        if (!decoded)
            return fail(std::move(decoded).error());
        last_reply_text_ = std::move(frame.text);
        last_info_ = std::make_shared<const ProgramInfo>(std::move(decoded->info));
        last_reply_ = std::move(*decoded);  // its info moved to last_info_
    }
    const varlink::AcquireReply& reply = *last_reply_;
    FdTaker taker(frame.fds);
    UniqueFd program;
    if (reply.program) {
        auto fd = taker.take(*reply.program);
        if (!fd)
            return fail(std::move(fd).error());
        program = std::move(*fd);
    }
    auto links = taker.take(reply.links.value_or(std::map<std::string, std::uint64_t>{}));
    if (!links)
        return fail(std::move(links).error());
    auto maps = taker.take(reply.maps);
    if (!maps)
        return fail(std::move(maps).error());
    // Unreferenced fds (none are expected) close with `frame` here.
    return Program(Program::Shared{}, last_info_, std::move(program), std::move(*maps), std::move(*links));
}

Result<std::vector<ProgramEntry>> SocketTransport::list_programs()
{
    auto j = call_json("ListPrograms", json::object());
    if (!j)
        return fail(std::move(j).error());
    auto programs = j->value("programs", json::array());
    if (!programs.is_array())
        return bad_reply("programs is not an array");
    std::vector<ProgramEntry> out;
    for (const auto& p : programs) {
        if (!p.is_object())
            return bad_reply("a program entry is not an object");
        ProgramEntry e;
        e.name = string_field(p, "name");
        e.version = string_field(p, "version");
        e.description = string_field(p, "description");
        e.state = string_field(p, "state");
        e.instance = string_field(p, "instance");
        e.allowed = p.value("allowed", false);
        e.needs_polkit = p.value("needs_polkit", false);
        e.cut_live = p.value("cut_live", false);
        e.error = string_field(p, "error");
        e.reason = string_field(p, "reason");
        out.push_back(std::move(e));
    }
    return out;
}

Result<std::vector<Feature>> SocketTransport::features()
{
    auto j = call_json("GetFeatures", json::object());
    if (!j)
        return fail(std::move(j).error());
    // {"features": {"<name>": {"available": bool, "detail": "..."}, ...}}
    auto features = j->value("features", json::object());
    if (!features.is_object())
        return bad_reply("features is not an object");
    std::vector<Feature> out;
    for (auto it = features.begin(); it != features.end(); ++it) {
        if (!it->is_object())
            return bad_reply("feature " + it.key() + " is not an object");
        out.push_back({it.key(), it->value("available", false), string_field(*it, "detail")});
    }
    return out;
}

Result<std::string> SocketTransport::metrics()
{
    auto j = call_json("GetMetrics", json::object());
    if (!j)
        return fail(std::move(j).error());
    auto text = j->find("text");
    if (text == j->end() || !text->is_string())
        return bad_reply("text is not a string");
    return text->get<std::string>();
}

Result<std::string> SocketTransport::approve(std::string_view program, const ApproveOptions& o)
{
    nlohmann::json params = {{"program", program}, {"users", o.users}, {"groups", o.groups},
                             {"anyone", o.anyone}, {"polkit", o.polkit}};
    if (!o.signer.empty())
        params["signer"] = o.signer;
    auto j = call_json("Approve", std::move(params));
    if (!j)
        return fail(std::move(j).error());
    return string_field(*j, o.signer.empty() ? "manifest_sha256" : "signer");
}

Result<RevokeResult> SocketTransport::revoke(std::string_view program)
{
    auto j = call_json("Revoke", {{"program", program}});
    if (!j)
        return fail(std::move(j).error());
    // A count absent (an older daemon) stays absent; a present one must be a u32.
    auto count = [&](const char* key, std::optional<unsigned>& out) -> Result<void> {
        auto it = j->find(key);
        if (it == j->end())
            return {};
        if (!it->is_number_unsigned() || it->get<std::uint64_t>() > UINT32_MAX)
            return bad_reply(std::string(key) + " is not an unsigned integer");
        out = it->get<unsigned>();
        return {};
    };
    std::optional<unsigned> removed;
    RevokeResult result;
    for (auto [key, out] : {std::pair{"removed_approvals", &removed}, std::pair{"cut_instances", &result.cut_instances},
                            std::pair{"uncut_instances", &result.uncut_instances}})
        if (auto ok = count(key, *out); !ok)
            return fail(std::move(ok).error());
    result.removed_approvals = removed.value_or(0);
    return result;
}

Result<void> SocketTransport::reload()
{
    auto j = call_json("Reload", json::object());
    if (!j)
        return fail(std::move(j).error());
    return {};
}

Result<Client> Client::connect_socket(std::string path, std::chrono::milliseconds timeout)
{
    auto t = SocketTransport::connect(path, timeout);
    if (!t)
        return fail(std::move(t).error());
    return Client(std::move(*t));
}

}  // namespace bpfbroker
