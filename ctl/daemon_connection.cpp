// Reaching bpfbrokerd from the command line; see daemon_connection.h.
#include "daemon_connection.h"

#include <cerrno>

namespace bpfbroker::ctl {

std::string socket_path(const GlobalOptions& o)
{
    if (!o.socket_path.empty())
        return o.socket_path;
    if (o.root == "/")
        return std::string(kDefaultSocketPath);
    return o.root + (o.root.back() == '/' ? "" : "/") + "run/bpfbroker/org.bpfbroker.Broker";
}

Result<Client> connect(const GlobalOptions& o)
{
    auto c = o.bus == "system" ? Client::connect_dbus() : Client::connect_socket(socket_path(o));
    if (!c && c.error().code == ErrorCode::SystemError &&
        (c.error().sys_errno == ENOENT || c.error().sys_errno == ECONNREFUSED)) {
        auto err = std::move(c).error();
        err.message += " (bpfbrokerd is not running: start it with `systemctl start bpfbrokerd.socket`, or as root `bpfbrokerd";
        err.message += (o.root == "/" ? "" : " --root " + o.root);
        err.message += (o.socket_path.empty() ? "" : " --socket " + o.socket_path) + " --foreground`)";
        return fail(std::move(err));
    }
    return c;
}

}  // namespace bpfbroker::ctl
