// A stand-in service manager; see service_manager_standin.h.
#include "service_manager_standin.h"

#include "build_paths.h"
#include "io.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace bpfbroker::test_support {

namespace {

sockaddr_un unix_address(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        throw std::runtime_error("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

UniqueFd bound_socket(int type, const std::string& path)
{
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!fd)
        throw std::runtime_error("socket: " + errno_text(errno));
    ::unlink(path.c_str());
    auto addr = unix_address(path);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
        throw std::runtime_error("bind " + path + ": " + errno_text(errno));
    return fd;
}

// The KEY=VALUE lines of a notify message.
std::map<std::string, std::string> fields_of(const std::string& text)
{
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq != std::string::npos)
            out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
}

}  // namespace

std::size_t unit_fd_store_max()
{
    std::istringstream unit(read_text_file(source_dir() + "/systemd/bpfbrokerd.service"));
    const std::string key = "FileDescriptorStoreMax=";
    for (std::string line; std::getline(unit, line);)
        if (line.starts_with(key))
            return std::stoul(line.substr(key.size()));
    return 0;  // systemd's default: no store
}

ServiceManagerStandin::ServiceManagerStandin(const std::string& notify_path, const std::string& socket_path,
                                             std::size_t store_max)
    : store_max_(store_max), notify_path_(notify_path)
{
    listening_ = bound_socket(SOCK_STREAM, socket_path);
    if (::chmod(socket_path.c_str(), 0666) != 0 || ::listen(listening_.get(), 128) != 0)
        throw std::runtime_error("listen " + socket_path + ": " + errno_text(errno));
    notify_ = bound_socket(SOCK_DGRAM, notify_path_);
    stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    if (!stop_)
        throw std::runtime_error("eventfd: " + errno_text(errno));
    reader_ = std::thread([this] { serve(); });
}

ServiceManagerStandin::~ServiceManagerStandin()
{
    const std::uint64_t one = 1;
    (void)::write(stop_.get(), &one, sizeof(one));
    reader_.join();
    ::unlink(notify_path_.c_str());
}

void ServiceManagerStandin::prepare(SpawnOptions& o)
{
    // What the last daemon sent before it died is applied first, so that a
    // restart right after a kill sees the whole store (the reader thread
    // may not have got to it yet).
    while (receive_one()) {
    }
    std::lock_guard lock(mutex_);
    ready_ = false;
    o.listen_fds = {listening_.get()};
    o.listen_fdnames = "bpfbrokerd.socket";
    for (const auto& [name, fd] : store_) {
        o.listen_fds.push_back(fd.get());
        o.listen_fdnames += ":" + name;
    }
    o.env["NOTIFY_SOCKET"] = notify_path_;
}

std::vector<std::string> ServiceManagerStandin::stored_names() const
{
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [name, fd] : store_)
        out.push_back(name);
    return out;
}

std::size_t ServiceManagerStandin::refused() const
{
    std::lock_guard lock(mutex_);
    return refused_;
}

void ServiceManagerStandin::replace(const std::string& name, UniqueFd fd)
{
    std::lock_guard lock(mutex_);
    store_.erase(name);
    store_.emplace(name, std::move(fd));
}

void ServiceManagerStandin::serve()
{
    for (;;) {
        pollfd p[2] = {{notify_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0 && errno != EINTR)
            return;
        if (p[1].revents)
            return;
        if (p[0].revents & POLLIN)
            (void)receive_one();
    }
}

bool ServiceManagerStandin::receive_one()
{
    // One reader at a time, from receive to apply: messages apply in order.
    std::lock_guard order(receive_mutex_);
    char text[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 64)];
    iovec iov{text, sizeof(text) - 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(notify_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return false;
    std::vector<UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            fds.emplace_back(fd);
        }
    }
    handle(std::string(text, static_cast<std::size_t>(n)), std::move(fds));
    return true;
}

void ServiceManagerStandin::handle(const std::string& text, std::vector<UniqueFd> fds)
{
    const auto fields = fields_of(text);
    auto has = [&](const char* key) {
        auto it = fields.find(key);
        return it != fields.end() && it->second == "1";
    };
    auto name_it = fields.find("FDNAME");
    // systemd's default name for a stored fd.
    const std::string name = name_it == fields.end() ? "stored" : name_it->second;
    std::lock_guard lock(mutex_);
    if (has("READY"))
        ready_ = true;
    if (has("FDSTOREREMOVE"))
        store_.erase(name);
    if (has("FDSTORE")) {
        for (auto& fd : fds) {
            if (store_.size() >= store_max_) {
                ++refused_;  // closed, as systemd does past the maximum
                continue;
            }
            store_.emplace(name, std::move(fd));
        }
    }
}

}  // namespace bpfbroker::test_support
