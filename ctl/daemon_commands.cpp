// The daemon-facing half of bpfbrokerctl: list, status, features, metrics, acquire,
// exec (users) and approve, revoke, reload (administrators).
#include "commands.h"
#include "daemon_connection.h"
#include "program_exec.h"

#include <bpfbroker/client.h>

#include <iomanip>
#include <iostream>

namespace bpfbroker::ctl {

namespace {

// Connects and makes one call; a failure to connect reads like a failed call.
template <typename Call>
auto ask(const GlobalOptions& o, Call&& call) -> decltype(call(std::declval<Client&>()))
{
    auto c = connect(o);
    if (!c)
        return fail(std::move(c).error());
    return call(*c);
}

nlohmann::json program_json(const Program& p)
{
    nlohmann::json maps = nlohmann::json::object();
    for (const auto& [name, fd] : p.maps())
        maps[name] = {{"fd", fd.get()}, {"access", p.info().map_access.count(name) ? p.info().map_access.at(name) : ""}};
    const auto& i = p.info();
    return {{"name", i.name}, {"version", i.version}, {"type", i.type}, {"instance", i.instance},
            {"id", i.id},     {"tag", i.tag},         {"program_fd", p.fd().get()}, {"maps", maps}};
}

int run_list(const GlobalOptions& o)
{
    auto list = ask(o, [](Client& c) { return c.list_programs(); });
    if (!list)
        return report_error(list.error());
    if (o.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : *list)
            out.push_back({{"name", e.name}, {"version", e.version}, {"state", e.state}, {"instance", e.instance},
                           {"allowed", e.allowed}, {"needs_polkit", e.needs_polkit}, {"cut_live", e.cut_live},
                           {"error", e.error},
                           {"reason", e.reason}, {"description", e.description}});
        print_json(out);
        return kExitOk;
    }
    for (const auto& e : *list) {
        std::cout << std::left << std::setw(18) << e.name << ' ' << std::setw(10) << e.version << ' ' << std::setw(11)
                  << e.instance << ' ' << (e.allowed ? (e.needs_polkit ? "allowed (polkit)" : "allowed") : "denied") << '\n';
        if (!e.allowed)
            std::cout << "    " << e.error << ": " << e.reason << '\n';
    }
    return kExitOk;
}

int run_features(const GlobalOptions& o)
{
    auto features = ask(o, [](Client& c) { return c.features(); });
    if (!features)
        return report_error(features.error());
    if (o.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& f : *features)
            out.push_back({{"name", f.name}, {"available", f.available}, {"detail", f.detail}});
        print_json(out);
        return kExitOk;
    }
    for (const auto& f : *features)
        std::cout << (f.available ? "yes " : "no  ") << std::left << std::setw(26) << f.name << ' ' << f.detail << '\n';
    return kExitOk;
}

int run_status(const GlobalOptions& o)
{
    auto c = connect(o);
    if (!c) {
        // Like systemctl status: "not running" is an answer, exit code 3.
        if (o.json)
            print_json({{"socket", socket_path(o)}, {"running", false}, {"error", error_to_json(c.error())}});
        else
            std::cout << "bpfbrokerd is not reachable: " << c.error().describe() << '\n';
        return 3;
    }
    auto list = c->list_programs();
    auto features = c->features();
    if (!list)
        return report_error(list.error());
    if (!features)
        return report_error(features.error());
    std::size_t valid = 0, allowed = 0, available = 0;
    for (const auto& e : *list) {
        valid += e.state == "valid";
        allowed += e.allowed;
    }
    for (const auto& f : *features)
        available += f.available;
    if (o.json) {
        print_json({{"socket", socket_path(o)}, {"running", true}, {"programs", list->size()}, {"valid", valid},
                    {"allowed_for_caller", allowed}, {"features_available", available}});
        return kExitOk;
    }
    std::cout << "bpfbrokerd is running on " << socket_path(o) << "\n  programs: " << list->size() << " (" << valid
              << " valid, " << allowed << " allowed for you)\n  kernel features: " << available << " of "
              << features->size() << " available\n";
    return kExitOk;
}

int run_acquire(const std::string& name, const GlobalOptions& o)
{
    auto p = ask(o, [&](Client& c) { return c.acquire(name); });
    if (!p)
        return report_error(p.error());
    if (o.json) {
        print_json(program_json(*p));
        return kExitOk;
    }
    const auto& i = p->info();
    std::cout << i.name << ' ' << i.version << ": " << i.type << ", " << i.instance << ", prog id " << i.id << ", tag "
              << i.tag << "\n  program fd " << p->fd().get() << '\n';
    for (const auto& [map, fd] : p->maps())
        std::cout << "  map " << map << " fd " << fd.get() << " ("
                  << (i.map_access.count(map) ? i.map_access.at(map) : "?") << ")\n";
    return kExitOk;
}

int run_exec(const std::string& name, const std::vector<std::string>& command, const GlobalOptions& o)
{
    auto p = ask(o, [&](Client& c) { return c.acquire(name); });
    if (!p)
        return report_error(p.error());
    return exec_with_program(*p, command);
}

int run_approve(const std::string& name, const ApproveOptions& a, const GlobalOptions& o)
{
    auto hash = ask(o, [&](Client& c) { return c.approve(name, a); });
    if (!hash)
        return report_error(hash.error());
    if (!a.signer.empty()) {  // the grant names no manifest: every version by this signer
        if (o.json)
            print_json({{"program", name}, {"signer", *hash}});
        else
            std::cout << "Approved " << name << " as signed by " << *hash << " (this and later versions)\n";
        return kExitOk;
    }
    if (o.json)
        print_json({{"program", name}, {"manifest_sha256", *hash}});
    else
        std::cout << "Approved " << name << " (manifest " << *hash << ")\n";
    return kExitOk;
}

int run_revoke(const std::string& name, const GlobalOptions& o)
{
    auto revoked = ask(o, [&](Client& c) { return c.revoke(name); });
    if (!revoked)
        return report_error(revoked.error());
    const bool counted = revoked->cut_instances && revoked->uncut_instances;
    if (o.json) {
        nlohmann::json out = {{"program", name}, {"removed_approvals", revoked->removed_approvals}};
        if (counted)
            out["cut_instances"] = *revoked->cut_instances, out["uncut_instances"] = *revoked->uncut_instances;
        print_json(out);
        return kExitOk;
    }
    std::cout << "Revoked " << name << " (" << revoked->removed_approvals
              << " approvals removed; allow-list grants masked)\n";
    if (counted)
        std::cout << "Live instances cut: " << *revoked->cut_instances
                  << ", not cut (no revocation guard): " << *revoked->uncut_instances << '\n';
    else
        std::cout << "Live instances: not reported by this daemon\n";
    return kExitOk;
}

// The OpenMetrics text as the daemon wrote it, for scrapers and eyes alike.
int run_metrics(const GlobalOptions& o)
{
    auto text = ask(o, [](Client& c) { return c.metrics(); });
    if (!text)
        return report_error(text.error());
    if (o.json)
        print_json({{"metrics", *text}});
    else
        std::cout << *text;
    return kExitOk;
}

int run_reload(const GlobalOptions& o)
{
    auto c = connect(o);
    if (!c)
        return report_error(c.error());
    if (auto r = c->reload(); !r)
        return report_error(r.error());
    if (o.json)
        print_json({{"reloaded", true}});
    else
        std::cout << "Reloaded\n";
    return kExitOk;
}

}  // namespace

void add_daemon_commands(CLI::App& app, GlobalOptions& options, int& exit_code)
{
    app.add_subcommand("list", "List programs and whether you may acquire each")
        ->callback([&] { exit_code = run_list(options); });
    app.add_subcommand("status", "Show whether bpfbrokerd runs and a summary")
        ->callback([&] { exit_code = run_status(options); });
    app.add_subcommand("features", "Show the kernel features bpfbrokerd found")
        ->callback([&] { exit_code = run_features(options); });
    app.add_subcommand("metrics", "Print bpfbrokerd's counters as OpenMetrics text")
        ->callback([&] { exit_code = run_metrics(options); });
    app.add_subcommand("reload", "Make bpfbrokerd rescan its policy (root)")
        ->callback([&] { exit_code = run_reload(options); });

    auto name = std::make_shared<std::string>();
    auto* acq = app.add_subcommand("acquire", "Acquire a program and print what was received");
    acq->add_option("name", *name, "Program name")->required();
    acq->callback([name, &options, &exit_code] { exit_code = run_acquire(*name, options); });

    auto exec_name = std::make_shared<std::string>();
    auto command = std::make_shared<std::vector<std::string>>();
    auto* ex = app.add_subcommand("exec", "Acquire a program and run a command with its fds inherited "
                                          "(BPFBROKER_PROGRAM_FD, BPFBROKER_MAP_FDS=name:fd,...)");
    ex->add_option("name", *exec_name, "Program name")->required();
    ex->add_option("command", *command, "Command and arguments (after --)")->required();
    ex->callback([exec_name, command, &options, &exit_code] { exit_code = run_exec(*exec_name, *command, options); });

    auto approve_name = std::make_shared<std::string>();
    auto approve = std::make_shared<ApproveOptions>();
    auto* ap = app.add_subcommand("approve", "Allow users or groups to acquire a program's current version (root)");
    ap->add_option("name", *approve_name, "Program name")->required();
    ap->add_option("--user,-u", approve->users, "User name or uid (repeatable)");
    ap->add_option("--group,-g", approve->groups, "Group name or gid (repeatable)");
    ap->add_flag("--anyone", approve->anyone, "Allow every user");
    ap->add_flag("--polkit", approve->polkit, "Also require polkit authorization (org.bpfbroker.acquire)");
    ap->add_option("--signer", approve->signer,
                   "Grant every version signed by this key id (it must sign the program now); default: this manifest");
    ap->callback([approve_name, approve, &options, &exit_code] {
        if (approve->users.empty() && approve->groups.empty() && !approve->anyone) {
            exit_code = report_error("approve needs --user, --group or --anyone", kExitUsage);
            return;
        }
        exit_code = run_approve(*approve_name, *approve, options);
    });

    auto revoke_name = std::make_shared<std::string>();
    auto* rv = app.add_subcommand("revoke", "Remove approvals of a program, mask its allow-list grants and cut its live instances (root)");
    rv->add_option("name", *revoke_name, "Program name")->required();
    rv->callback([revoke_name, &options, &exit_code] { exit_code = run_revoke(*revoke_name, options); });
}

}  // namespace bpfbroker::ctl
