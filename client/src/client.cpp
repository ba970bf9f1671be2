// The transport-independent half of Client: requests as JSON, replies
// checked strictly and turned into owning types. See client.h.
#include <bpfbroker/client.h>

#include <nlohmann/json.hpp>

#include <set>

namespace bpfbroker {

namespace {

Unexpected bad_reply(const std::string& why)
{
    return fail(ErrorCode::ProtocolError, "malformed reply from bpfbrokerd: " + why);
}

Result<nlohmann::json> parse_object(const std::string& text)
{
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return bad_reply("not a JSON object");
    return j;
}

std::string string_field(const nlohmann::json& j, const char* key)
{
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Takes the fd at `index` out of `fds`, at most once per index.
Result<UniqueFd> take_fd(const nlohmann::json& index, std::vector<UniqueFd>& fds, std::set<std::size_t>& used)
{
    if (!index.is_number_unsigned())
        return bad_reply("fd index is not a non-negative integer");
    auto i = index.get<std::size_t>();
    if (i >= fds.size() || !used.insert(i).second)
        return bad_reply("fd index " + std::to_string(i) + " does not name a received fd");
    return std::move(fds[i]);
}

}  // namespace

const UniqueFd* Program::map(std::string_view name) const
{
    auto it = maps_.find(std::string(name));
    return it == maps_.end() ? nullptr : &it->second;
}

Result<Program> Client::acquire(std::string_view name)
{
    auto reply = transport_->call("AcquireProgram", nlohmann::json({{"name", name}}).dump());
    if (!reply)
        return fail(std::move(reply).error());
    auto j = parse_object(reply->json);
    if (!j)
        return fail(std::move(j).error());
    std::set<std::size_t> used;
    auto program = take_fd(j->value("program", nlohmann::json()), reply->fds, used);
    if (!program)
        return fail(std::move(program).error());
    std::map<std::string, UniqueFd> maps;
    auto maps_json = j->value("maps", nlohmann::json::object());
    if (!maps_json.is_object())
        return bad_reply("maps is not an object");
    for (auto it = maps_json.begin(); it != maps_json.end(); ++it) {
        auto fd = take_fd(it.value(), reply->fds, used);
        if (!fd)
            return fail(std::move(fd).error());
        maps.emplace(it.key(), std::move(*fd));
    }
    ProgramInfo info;
    auto info_json = j->value("info", nlohmann::json::object());
    if (!info_json.is_object())
        return bad_reply("info is not an object");
    info.name = string_field(info_json, "name");
    info.version = string_field(info_json, "version");
    info.type = string_field(info_json, "type");
    info.instance = string_field(info_json, "instance");
    info.tag = string_field(info_json, "tag");
    if (auto id = info_json.find("id"); id != info_json.end() && id->is_number_unsigned())
        info.id = id->get<std::uint32_t>();
    if (auto access = info_json.find("map_access"); access != info_json.end() && access->is_object())
        for (auto it = access->begin(); it != access->end(); ++it)
            if (it->is_string())
                info.map_access[it.key()] = it->get<std::string>();
    // Attaching the wrong program would be silent; refuse a reply for another name.
    if (info.name != name)
        return bad_reply("asked for \"" + std::string(name) + "\" but the reply is for \"" + info.name + "\"");
    // Unreferenced fds (none are expected) close with `reply` here.
    return Program(std::move(info), std::move(*program), std::move(maps));
}

Result<std::vector<ProgramEntry>> Client::list_programs()
{
    auto reply = transport_->call("ListPrograms", "{}");
    if (!reply)
        return fail(std::move(reply).error());
    auto j = parse_object(reply->json);
    if (!j)
        return fail(std::move(j).error());
    auto programs = j->value("programs", nlohmann::json::array());
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
        e.error = string_field(p, "error");
        e.reason = string_field(p, "reason");
        out.push_back(std::move(e));
    }
    return out;
}

Result<std::vector<Feature>> Client::features()
{
    auto reply = transport_->call("GetFeatures", "{}");
    if (!reply)
        return fail(std::move(reply).error());
    auto j = parse_object(reply->json);
    if (!j)
        return fail(std::move(j).error());
    // {"features": {"<name>": {"available": bool, "detail": "..."}, ...}}
    auto features = j->value("features", nlohmann::json::object());
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

Result<std::string> Client::approve(std::string_view program, const ApproveOptions& o)
{
    nlohmann::json params = {{"program", program}, {"users", o.users}, {"groups", o.groups},
                             {"anyone", o.anyone}, {"polkit", o.polkit}};
    if (!o.signer.empty())
        params["signer"] = o.signer;
    auto reply = transport_->call("Approve", params.dump());
    if (!reply)
        return fail(std::move(reply).error());
    auto j = parse_object(reply->json);
    if (!j)
        return fail(std::move(j).error());
    return string_field(*j, o.signer.empty() ? "manifest_sha256" : "signer");
}

Result<unsigned> Client::revoke(std::string_view program)
{
    auto reply = transport_->call("Revoke", nlohmann::json({{"program", program}}).dump());
    if (!reply)
        return fail(std::move(reply).error());
    auto j = parse_object(reply->json);
    if (!j)
        return fail(std::move(j).error());
    return j->value("removed_approvals", 0u);
}

Result<void> Client::reload()
{
    auto reply = transport_->call("Reload", "{}");
    if (!reply)
        return fail(std::move(reply).error());
    return {};
}

}  // namespace bpfbroker
