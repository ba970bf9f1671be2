// bpfbrokerd's manager; see manager.h.
#include "brokerd/manager.h"

#include "brokerd/audit_log.h"
#include "brokerd/broker.h"
#include "brokerd/dbus_service.h"
#include "brokerd/fd_store.h"
#include "brokerd/feature_probe.h"
#include "brokerd/log.h"
#include "brokerd/varlink_server.h"
#include "policy/paths.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace bpfbroker::brokerd {

namespace {

std::string join_root(const std::string& root, std::string_view rel)
{
    std::string out = root;
    if (out.empty() || out.back() != '/')
        out += '/';
    return out + std::string(rel);
}

// mkdir -p for the runtime directory when systemd did not create it.
void make_dirs(const std::string& path)
{
    for (std::size_t pos = 1; pos != std::string::npos;) {
        pos = path.find('/', pos + 1);
        std::string prefix = path.substr(0, pos);
        ::mkdir(prefix.c_str(), 0755);
    }
}

// The listening socket: the one the service manager passed when socket
// activated, else created at `path`. `created` says whether we should unlink
// it at exit.
Result<UniqueFd> listening_socket(const std::string& path, UniqueFd passed, bool& created)
{
    if (passed) {
        int flags = ::fcntl(passed.get(), F_GETFL);
        ::fcntl(passed.get(), F_SETFL, flags | O_NONBLOCK);
        created = false;
        return passed;
    }
    make_dirs(path.substr(0, path.rfind('/')));
    created = true;
    return VarlinkServer::listen_at(path);
}

Result<UniqueFd> blocked_signals_fd()
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
        return fail(make_system_error("pthread_sigmask", errno));
    ::signal(SIGPIPE, SIG_IGN);
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd)
        return fail(make_system_error("signalfd", errno));
    return fd;
}

void log_policy_state(const Broker& broker)
{
    auto snap = broker.snapshot();
    std::size_t valid = 0;
    for (const auto& e : snap->catalog.entries) {
        if (e.valid())
            ++valid;
        else
            log_warning("program \"" + e.name + "\" refused: " + e.error.describe());
    }
    for (const auto& p : broker.problems())
        log_warning(p.path + ": " + p.error.describe() + ", ignoring");
    log_info("catalog: " + std::to_string(valid) + " of " + std::to_string(snap->catalog.entries.size()) +
             " programs valid, " + std::to_string(snap->catalog.keys.keys.size()) + " trusted keys, " +
             std::to_string(snap->grants.grants.size()) + " grants");
}

// Every queued reply holds fds; use the whole hard limit the service was
// given (LimitNOFILE=), the fd budgets in VarlinkServer stay well below it.
void raise_fd_limit()
{
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

Result<std::unique_ptr<Manager>> Manager::start(const DaemonOptions& o)
{
    std::unique_ptr<Manager> m(new Manager());
    raise_fd_limit();
    bool journal = !o.foreground && std::getenv("JOURNAL_STREAM") != nullptr;
    log_to_journal(journal);
    auto signals = blocked_signals_fd();
    if (!signals)
        return fail(std::move(signals).error());
    m->signals_ = std::move(*signals);
    auto audit = AuditLog::open(journal, o.audit_file);
    if (!audit)
        return fail(std::move(audit).error());
    m->audit_ = std::move(*audit);

    auto features = probe_kernel_features();
    std::string found;
    for (const auto& name : features.available())
        found += (found.empty() ? "" : " ") + name;
    log_info("kernel features: " + (found.empty() ? std::string("none") : found));

    BrokerConfig config;
    config.root = o.root;
    config.trust.owner = o.trust_own_files ? ::geteuid() : 0;
    config.settings_file = o.settings_file;
    m->broker_ = std::make_unique<Broker>(config, std::move(features), *m->audit_);
    if (auto r = m->broker_->reload(); !r)
        return fail(r.error().code, "Failed to load policy from " + o.root + ": " + r.error().describe());
    log_policy_state(*m->broker_);
    // The socket and what the fd store kept, when a service manager passed them.
    auto passed = take_passed_fds();
    if (!passed)
        return fail(passed.error().code, "Failed to take the fds the service manager passed: " + passed.error().describe());
    UniqueFd passed_socket = std::move(passed->listening_socket);
    for (const auto& name : passed->refused)
        log_warning("the service manager passed an fd named \"" + name + "\" that is no socket or store fd of ours; closed it");
    // Before serving: what a previous run handed out is registered again.
    const std::string runtime_dir = join_root(o.root, std::string(policy::paths::kRuntimeDir));
    if (auto restored = m->broker_->restore_state(runtime_dir, std::move(*passed)); !restored) {
        log_warning("state of a previous run not restored: " + restored.error().describe() +
                    "; live instances it handed out cannot be revoked, ignoring");
    } else {
        if (!restored->distrusted.empty())
            log_warning("the state journal in " + runtime_dir + " was not trusted (" + restored->distrusted +
                        ") and was replaced");
        const auto& r = *restored;
        if (r.restored + r.gone + r.cut + r.shared_restored + r.shared_gone + r.skipped_lines + r.store_refused > 0)
            log_info("restored " + std::to_string(r.restored) + " live per-client and " +
                     std::to_string(r.shared_restored) + " shared instances of a previous run, " +
                     std::to_string(r.from_fd_store) + " of them from the fd store (" + std::to_string(r.gone) +
                     " per-client and " + std::to_string(r.shared_gone) + " shared gone since, " +
                     std::to_string(r.cut) + " cut, " + std::to_string(r.skipped_lines) +
                     " unreadable journal lines, " + std::to_string(r.store_refused) +
                     " stored fds matching no record removed)");
    }

    m->socket_path_ = o.socket_path.empty() ? join_root(o.root, std::string(policy::paths::kRuntimeDir) + "/" +
                                                                    std::string(policy::paths::kSocketName))
                                            : o.socket_path;
    auto listen_fd = listening_socket(m->socket_path_, std::move(passed_socket), m->created_socket_);
    if (!listen_fd)
        return fail(listen_fd.error().code,
                    "Failed to listen on " + m->socket_path_ + ": " + listen_fd.error().describe());
    m->server_ = std::make_unique<VarlinkServer>(*m->broker_, std::move(*listen_fd), Limits(m->broker_->settings()));

    if (o.dbus) {
        auto started = DbusService::start(*m->broker_, m->broker_->settings().polkit);
        if (started) {
            m->dbus_ = std::move(*started);
            m->broker_->set_events(m->dbus_.get());
            log_info(std::string("serving ") + kDbusBusName + " on the system bus");
        } else {
            log_info("no D-Bus: " + started.error().message + "; serving the socket only");
        }
    }
    log_info(m->created_socket_ ? "serving on " + m->socket_path_ : std::string("serving on the socket systemd passed"));
    return m;
}

Manager::~Manager()
{
    if (broker_)
        broker_->set_events(nullptr);
    dbus_.reset();
    if (created_socket_)
        ::unlink(socket_path_.c_str());
}

Result<void> Manager::run()
{
    return server_->run(signals_.get(), [this](int signo) {
        if (signo != SIGHUP)
            return false;
        RequestContext signal_sender{TransportKind::Signal, {}, {}, false};
        signal_sender.peer.uid = 0;  // only the service manager (or root) can signal us
        if (auto r = broker_->reload(signal_sender); !r.ok())
            log_error("Reload failed, keeping the previous policy: " +
                      (r.denied() ? r.error().describe() : std::string("unexpected polkit question")));
        else
            log_policy_state(*broker_);
        return true;
    });
}

}  // namespace bpfbroker::brokerd
