// `bpfbrokerctl grants`: every grant the daemon would honour (vendor and /etc
// allow-lists, approvals), each with the file it came from, read from the
// root as the daemon reads it; no daemon needed.
#include "commands.h"

#include "policy/grants.h"
#include "policy/settings.h"

#include <unistd.h>

#include <iostream>

namespace bpfbroker::ctl {

namespace {

std::string principals_text(const policy::Principals& p)
{
    std::string out;
    auto add = [&out](const std::string& word) { out += (out.empty() ? "" : ", ") + word; };
    for (const auto& n : p.user_names)
        add("user " + n);
    for (auto id : p.uids)
        add("uid " + std::to_string(id));
    for (const auto& n : p.group_names)
        add("group " + n);
    for (auto id : p.gids)
        add("gid " + std::to_string(id));
    if (p.anyone)
        add("anyone");
    return out;
}

int run_grants(const GlobalOptions& o)
{
    policy::FileTrust trust{o.trust_own_files ? ::geteuid() : 0};
    auto rootfd = policy::open_trusted_root(o.root, trust);
    if (!rootfd)
        return report_error(rootfd.error());
    auto settings = policy::load_settings(rootfd->get(), trust);
    if (!settings)
        return report_error(settings.error());
    auto set = policy::load_grants(rootfd->get(), trust, settings->vendor_allowlists);

    if (o.json) {
        nlohmann::json grants = nlohmann::json::array();
        for (const auto& g : set.grants) {
            auto j = policy::grant_to_json(g);
            j["source"] = g.source;
            j["revoked"] = set.is_revoked(g.program);
            grants.push_back(std::move(j));
        }
        nlohmann::json problems = nlohmann::json::array();
        for (const auto& p : set.problems)
            problems.push_back({{"path", p.path}, {"error", error_to_json(p.error)}});
        print_json({{"root", o.root},
                    {"vendor_allowlists", settings->vendor_allowlists},
                    {"grants", grants},
                    {"revoked_programs", set.revoked_programs},
                    {"problems", problems}});
        return kExitOk;
    }
    std::cout << "Grants: " << set.grants.size()
              << (settings->vendor_allowlists ? "" : " (vendor allow-lists are turned off in the settings)") << '\n';
    for (const auto& g : set.grants) {
        bool by_signer = g.match == policy::MatchKind::Signer;
        std::cout << "  " << g.program << (set.is_revoked(g.program) ? " (revoked)" : "") << ": "
                  << principals_text(g.principals) << (g.polkit ? ", with polkit" : "") << "\n      "
                  << (by_signer ? "signer " : "manifest ") << g.match_value << "\n      from " << g.source << '\n';
    }
    for (const auto& p : set.revoked_programs)
        std::cout << "Revoked: " << p << '\n';
    for (const auto& p : set.problems)
        std::cout << "warning: " << p.path << ": " << p.error.describe() << ", ignoring\n";
    return kExitOk;
}

}  // namespace

void add_grants_commands(CLI::App& app, GlobalOptions& options, int& exit_code)
{
    app.add_subcommand("grants", "List every grant (allow-lists and approvals) under --root with its source")
        ->callback([&options, &exit_code] { exit_code = run_grants(options); });
}

}  // namespace bpfbroker::ctl
