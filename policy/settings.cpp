// Daemon settings; see settings.h.
#include "policy/settings.h"

#include "policy/paths.h"
#include "base/strict_json.h"

#include <cctype>
#include <cerrno>

namespace bpfbroker::policy {

namespace {

// A tracepoint "CATEGORY/NAME" or raw tracepoint "NAME", optionally ending in '*'.
bool is_attach_pattern(std::string_view s)
{
    if (s.empty() || s.size() > 130)
        return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool word = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/';
        if (!word && !(c == '*' && i + 1 == s.size()))
            return false;
    }
    return true;
}

void add_attach_patterns(JsonObjectReader& r, std::string_view key, std::vector<std::string>& into)
{
    const auto* list = r.optional(key);
    if (!list)
        return;
    json_as_array(*list, r.path_of(key), kMaxExtraAttachPoints);
    for (std::size_t i = 0; i < list->size(); ++i) {
        auto path = r.path_of(key) + "[" + std::to_string(i) + "]";
        auto pattern = json_as_string((*list)[i], path, 130);
        if (!is_attach_pattern(pattern))
            throw SchemaViolation{path, "must be of [A-Za-z0-9_/], optionally ending in '*'"};
        into.push_back(std::move(pattern));
    }
}

}  // namespace

Result<Settings> parse_settings(std::string_view bytes)
{
    auto doc = parse_strict_json(bytes, ErrorCode::InvalidParameter);
    if (!doc)
        return fail(std::move(doc).error());
    Settings s;
    try {
        JsonObjectReader r(*doc, "$");
        s.vendor_allowlists = r.optional_bool("vendor_allowlists", s.vendor_allowlists);
        s.polkit = r.optional_bool("polkit", s.polkit);
        if (const auto* limits = r.optional("limits")) {
            JsonObjectReader l(*limits, r.path_of("limits"));
            if (l.has("max_instances_per_uid"))
                s.limits.max_instances_per_uid = static_cast<unsigned>(l.required_int("max_instances_per_uid", 0, 4096));
            if (l.has("max_connections_per_uid"))
                s.max_connections_per_uid = static_cast<unsigned>(l.required_int("max_connections_per_uid", 1, 4096));
            if (l.has("max_connections_total"))
                s.max_connections_total = static_cast<unsigned>(l.required_int("max_connections_total", 1, 65536));
            if (l.has("max_message_bytes"))
                s.max_message_bytes = static_cast<std::size_t>(l.required_int("max_message_bytes", 1024, 16 << 20));
            if (l.has("max_requests_per_second"))
                s.max_requests_per_second = static_cast<unsigned>(l.required_int("max_requests_per_second", 1, 1000000));
            if (l.has("stalled_client_timeout_ms"))
                s.stalled_client_timeout_ms = static_cast<unsigned>(l.required_int("stalled_client_timeout_ms", 100, 600000));
            l.reject_unknown();
        }
        if (const auto* points = r.optional("attach_points")) {
            JsonObjectReader a(*points, r.path_of("attach_points"));
            add_attach_patterns(a, "tracepoint", s.attach_points.tracepoint);
            add_attach_patterns(a, "raw_tracepoint", s.attach_points.raw_tracepoint);
            a.reject_unknown();
        }
        r.reject_unknown();
    } catch (const SchemaViolation& v) {
        return fail(ErrorCode::InvalidParameter, std::string(paths::kSettingsFile) + ": " + v.path + ": " + v.reason);
    }
    return s;
}

Result<Settings> load_settings(int rootfd, const FileTrust& trust)
{
    auto dir = open_trusted_dir(rootfd, paths::kAdminDir, trust);
    if (!dir) {
        if (dir.error().sys_errno == ENOENT)
            return Settings{};
        return fail(std::move(dir).error());
    }
    auto bytes = read_trusted_file(dir->get(), paths::kSettingsFile, 64 * 1024, trust);
    if (!bytes) {
        if (bytes.error().sys_errno == ENOENT)
            return Settings{};
        return fail(std::move(bytes).error());
    }
    return parse_settings(*bytes);
}


Result<Settings> load_settings_file(const std::string& path, const FileTrust& trust)
{
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    auto dirfd = open_trusted_root(dir, trust);
    if (!dirfd)
        return fail(std::move(dirfd).error());
    auto bytes = read_trusted_file(dirfd->get(), name, 64 * 1024, trust);
    if (!bytes)
        return fail(std::move(bytes).error());
    return parse_settings(*bytes);
}

}  // namespace bpfbroker::policy
