// `bpfbrokerctl uring-stats [--output FILE] -- CMD ARGS...`: runs CMD under
// uring_stats and, once it exits, prints the io_uring statistics of CMD's
// own process (per-opcode submissions and completions, failed completions by
// errno, the latency histogram) as a table, or JSON with --json. Exit
// status: CMD's (128 + N when signal N killed it).
//
// The daemon binds uring_stats to the process that connects, so the
// process that becomes CMD must acquire it: a child connects and acquires,
// passes the map fds and a dup of the links to this process over a socket
// pair, and execs CMD with the fds inherited as `exec` does (so CMD can read
// its own counters too). This process keeps the links, so CMD closing its
// inherited fds does not stop the counting, and reads the maps after CMD
// exits (the daemon sets the guard then: the counts are final).
#include "commands.h"
#include "daemon_connection.h"
#include "program_exec.h"

#include "uring_stats_report.h"
#include "wire/fd_passing.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <memory>
#include <string_view>

namespace bpfbroker::ctl {

namespace {

constexpr const char* kProgram = "uring_stats";
constexpr const char* kMaps[] = {"ops", "errors", "latency"};
// What the child says when exec failed (it has reported why already).
constexpr std::string_view kExecFailed = "exec failed";

// The child: acquire (as the process that becomes CMD), hand the fds to the
// parent, exec. Returns the exit code when it cannot go on.
int acquire_and_exec(const std::vector<std::string>& command, const GlobalOptions& o, int to_parent)
{
    auto client = connect(o);
    if (!client)
        return report_error(client.error());
    auto p = client->acquire(kProgram, AcquireOptions{});
    if (!p)
        return report_error(p.error());
    std::vector<int> fds;
    for (const char* name : kMaps) {
        const UniqueFd* fd = p->map(name);
        if (fd == nullptr)
            return report_error(std::string(kProgram) + " came without its \"" + name + "\" map");
        fds.push_back(fd->get());
    }
    for (const auto& [name, fd] : p->links())
        fds.push_back(fd.get());
    if (auto sent = send_all_with_fds(to_parent, "fds", fds); !sent)
        return report_error(sent.error());
    const int code = exec_with_program(*p, command);
    ::send(to_parent, kExecFailed.data(), kExecFailed.size(), MSG_NOSIGNAL);
    return code;
}

// The shell's convention for how a child ended.
int exit_status_of(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return kExitRefused;
}

std::string command_text(const std::vector<std::string>& command)
{
    std::string out;
    for (const auto& word : command)
        out += (out.empty() ? "" : " ") + word;
    return out;
}

// Writes the report to `out`: stdout, or the --output file, opened before
// CMD ran so that an unwritable path costs no run.
int print_report(const uring_stats::Snapshot& s, const std::vector<std::string>& command, pid_t pid, int status,
                 const GlobalOptions& o, int out)
{
    std::string text;
    if (o.json) {
        nlohmann::json doc = uring_stats::to_json(s);
        doc["command"] = command;
        doc["pid"] = pid;
        doc["exit_status"] = exit_status_of(status);
        text = doc.dump(2) + "\n";
    } else {
        text = "io_uring statistics of pid " + std::to_string(pid) + " (" + command_text(command) + "), " +
               (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                    : "exit status " + std::to_string(exit_status_of(status))) +
               "\n" + uring_stats::to_table(s, "  ");
    }
    std::cout << std::flush;
    for (std::string_view rest = text; !rest.empty();) {
        const ssize_t n = ::write(out, rest.data(), rest.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return report_error(make_system_error("writing the statistics", errno));
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    return kExitOk;
}

int run_uring_stats(const std::vector<std::string>& command, const std::string& output, const GlobalOptions& o)
{
    UniqueFd output_file;
    if (!output.empty()) {
        output_file = UniqueFd(::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!output_file)
            return report_error(make_system_error("cannot open " + output, errno));
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        return report_error(make_system_error("socketpair", errno));
    UniqueFd from_child(pair[0]);
    UniqueFd to_parent(pair[1]);
    // Like time(1): Ctrl-C and Ctrl-\ are for CMD; this process lives on to report.
    struct sigaction ignore {}, old_int{}, old_quit{};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGINT, &ignore, &old_int);
    ::sigaction(SIGQUIT, &ignore, &old_quit);
    const pid_t child = ::fork();
    if (child < 0)
        return report_error(make_system_error("fork", errno));
    if (child == 0) {
        ::sigaction(SIGINT, &old_int, nullptr);
        ::sigaction(SIGQUIT, &old_quit, nullptr);
        from_child.reset();
        std::_Exit(acquire_and_exec(command, o, to_parent.get()));
    }
    to_parent.reset();

    // The fds, then EOF once exec closed the child's end (or a word that it failed).
    char buffer[32];
    auto fds = recv_with_fds(from_child.get(), buffer, std::size(kMaps) + 8);
    bool ran = fds && fds->bytes > 0 && fds->fds.size() > std::size(kMaps);
    if (ran) {
        auto after = recv_with_fds(from_child.get(), buffer, 0);
        ran = after && after->bytes == 0;
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return report_error(make_system_error("waitpid", errno));
    if (!ran)  // the child said why (no grant, no daemon, no such command)
        return exit_status_of(status);

    auto snapshot = uring_stats::read_snapshot(fds->fds[0].get(), fds->fds[1].get(), fds->fds[2].get());
    if (!snapshot)
        return report_error(snapshot.error());
    const int out = output_file ? output_file.get() : STDOUT_FILENO;
    if (int printed = print_report(*snapshot, command, child, status, o, out); printed != kExitOk)
        return printed;
    return exit_status_of(status);
}

}  // namespace

void add_uring_stats_command(CLI::App& app, GlobalOptions& options, int& exit_code)
{
    auto command = std::make_shared<std::vector<std::string>>();
    auto output = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("uring-stats",
                                   "Run a command under uring_stats and print its own io_uring statistics when it "
                                   "exits (per-opcode counts, errors by errno, latency); exit status is the command's");
    cmd->add_option("--output,-o", *output, "Write the statistics to FILE (emptied before the command runs) instead of stdout");
    cmd->add_option("command", *command, "Command and arguments (after --)")->required();
    cmd->callback([command, output, &options, &exit_code] {
        exit_code = run_uring_stats(*command, *output, options);
    });
}

}  // namespace bpfbroker::ctl
