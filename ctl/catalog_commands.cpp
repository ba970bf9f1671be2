// `bpfbrokerctl catalog`: scan a root as the daemon would and show each entry.
#include "commands.h"

#include "policy/catalog.h"
#include "policy/paths.h"

#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <iostream>

namespace bpfbroker::ctl {

namespace {

nlohmann::json entry_to_json(const policy::CatalogEntry& e)
{
    nlohmann::json j = {{"name", e.name},
                        {"origin", policy::origin_name(e.origin)},
                        {"state", policy::entry_state_name(e.state)},
                        {"valid", e.valid()}};
    if (!e.manifest_sha256.empty())
        j["manifest_sha256"] = e.manifest_sha256;
    if (!e.signer_key_id.empty())
        j["signer"] = e.signer_key_id;
    if (e.manifest) {
        j["version"] = e.manifest->version;
        j["instance"] = policy::instance_mode_name(e.manifest->instance);
        j["description"] = e.manifest->description;
        j["cut_live"] = policy::can_be_cut_live(*e.manifest);
    }
    if (!e.valid())
        j["reason"] = error_to_json(e.error);
    return j;
}

int run_catalog(const GlobalOptions& o)
{
    policy::FileTrust trust{o.trust_own_files ? ::geteuid() : 0};
    auto catalog = policy::scan_catalog(o.root, trust);
    if (!catalog)
        return report_error(catalog.error());
    // No vendor folder is a fresh host, not an error; say so rather than "Programs: 0".
    auto vendor_dir = (std::filesystem::path(o.root) / policy::paths::kVendorDir).string();
    bool no_vendor_dir = !std::filesystem::is_directory(vendor_dir);
    if (o.json) {
        nlohmann::json entries = nlohmann::json::array();
        for (const auto& e : catalog->entries)
            entries.push_back(entry_to_json(e));
        nlohmann::json keys = nlohmann::json::array();
        for (const auto& k : catalog->keys.keys)
            keys.push_back({{"file", k.file_name},
                            {"origin", policy::origin_name(k.origin)},
                            {"key_id", k.key.key_id()},
                            {"type", policy::key_type_name(k.key.type())}});
        nlohmann::json problems = nlohmann::json::array();
        for (const auto* list : {&catalog->problems, &catalog->keys.problems})
            for (const auto& p : *list)
                problems.push_back({{"path", p.path}, {"error", error_to_json(p.error)}});
        nlohmann::json doc = {{"root", o.root}, {"programs", entries}, {"keys", keys}, {"problems", problems}};
        if (no_vendor_dir)
            doc["note"] = vendor_dir + " does not exist: no program package is installed";
        print_json(doc);
        return kExitOk;
    }
    if (no_vendor_dir)
        std::cout << "No programs are installed: " << vendor_dir
                  << " does not exist (install bpfbroker-programs, or a program package).\n";
    std::cout << "Trusted keys: " << catalog->keys.keys.size() << '\n';
    for (const auto& k : catalog->keys.keys)
        std::cout << "  " << k.key.key_id() << "  " << policy::key_type_name(k.key.type()) << "  "
                  << policy::origin_name(k.origin) << "/" << k.file_name << '\n';
    std::cout << "Programs: " << catalog->entries.size() << '\n';
    for (const auto& e : catalog->entries) {
        std::cout << "  " << std::left << std::setw(20) << e.name << ' ' << std::setw(22)
                  << policy::entry_state_name(e.state) << ' ' << policy::origin_name(e.origin);
        if (e.manifest)
            std::cout << ' ' << e.manifest->version
                      << (policy::can_be_cut_live(*e.manifest) ? " cut-live" : " not-cut-live (no revocation guard)");
        std::cout << '\n';
        if (!e.valid())
            std::cout << "      " << e.error.describe() << '\n';
    }
    for (const auto* list : {&catalog->problems, &catalog->keys.problems})
        for (const auto& p : *list)
            std::cout << "warning: " << p.path << ": " << p.error.describe() << ", ignoring\n";
    return kExitOk;
}

}  // namespace

void add_catalog_commands(CLI::App& app, GlobalOptions& options, int& exit_code)
{
    auto* c = app.add_subcommand("catalog", "Scan the programs under --root and show each one's state");
    c->callback([&options, &exit_code] { exit_code = run_catalog(options); });
}

}  // namespace bpfbroker::ctl
