// Exec with a program's fds inherited; see program_exec.h.
#include "program_exec.h"

#include "output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace bpfbroker::ctl {

namespace {

// "name:N,name:N" for fds made inheritable; false when one cannot be.
bool inheritable_list(const std::map<std::string, UniqueFd>& fds, std::string& out)
{
    for (const auto& [name, fd] : fds) {
        if (::fcntl(fd.get(), F_SETFD, 0) != 0)
            return false;
        out += (out.empty() ? "" : ",") + name + ":" + std::to_string(fd.get());
    }
    return true;
}

}  // namespace

int exec_with_program(const Program& p, const std::vector<std::string>& command)
{
    std::string map_fds, link_fds;
    if (p.fd().valid() && ::fcntl(p.fd().get(), F_SETFD, 0) != 0)
        return report_error(make_system_error("fcntl", errno));
    if (!inheritable_list(p.maps(), map_fds) || !inheritable_list(p.links(), link_fds))
        return report_error(make_system_error("fcntl", errno));
    ::setenv("BPFBROKER_PROGRAM", p.info().name.c_str(), 1);
    if (p.fd().valid())
        ::setenv("BPFBROKER_PROGRAM_FD", std::to_string(p.fd().get()).c_str(), 1);
    if (!link_fds.empty())
        ::setenv("BPFBROKER_LINK_FDS", link_fds.c_str(), 1);
    ::setenv("BPFBROKER_MAP_FDS", map_fds.c_str(), 1);
    std::vector<char*> argv;
    for (const auto& arg : command)
        argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    return report_error(make_system_error("cannot run " + command.front(), errno), 127);
}

}  // namespace bpfbroker::ctl
