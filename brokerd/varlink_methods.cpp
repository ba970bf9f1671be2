// org.bpfbroker.Broker method handlers for the direct socket; see varlink_methods.h.
#include "brokerd/varlink_methods.h"

#include "policy/strict_json.h"

#include <bpfbroker/error_names.h>

#include "varlink_framing.h"

namespace bpfbroker::brokerd {

namespace {

constexpr std::string_view kTransport = "socket";

VarlinkResponse error_response(const Error& e)
{
    return {varlink::make_error_reply(e.code, e.message), {}};
}

std::vector<std::string> string_list(policy::JsonObjectReader& r, std::string_view key)
{
    std::vector<std::string> out;
    const auto* v = r.optional(key);
    if (!v)
        return out;
    auto path = r.path_of(key);
    policy::json_as_array(*v, path, 1024);
    for (std::size_t i = 0; i < v->size(); ++i) {
        const auto& item = (*v)[i];
        if (item.is_number_unsigned())
            out.push_back(std::to_string(item.get<std::uint64_t>()));
        else
            out.push_back(policy::json_as_string(item, path + "[" + std::to_string(i) + "]", 64));
    }
    return out;
}

VarlinkResponse acquire(Broker& broker, const policy::Peer& peer, policy::JsonObjectReader& params)
{
    auto name = params.required_string("name", 64);
    params.reject_unknown();
    auto h = broker.acquire(peer, name, std::string(kTransport));
    if (!h)
        return error_response(h.error());
    VarlinkResponse resp;
    nlohmann::json maps = nlohmann::json::object();
    resp.fds.push_back(std::move(h->program));
    for (auto& [map_name, fd] : h->maps) {
        maps[map_name] = resp.fds.size();
        resp.fds.push_back(std::move(fd));
    }
    resp.message = varlink::make_reply({{"program", 0}, {"maps", maps}, {"info", handout_info_json(*h)}});
    return resp;
}

VarlinkResponse list_programs(Broker& broker, const policy::Peer& peer, policy::JsonObjectReader& params)
{
    params.reject_unknown();
    nlohmann::json programs = nlohmann::json::array();
    for (const auto& l : broker.list(peer))
        programs.push_back(listing_json(l));
    return {varlink::make_reply({{"programs", programs}}), {}};
}

VarlinkResponse get_features(Broker& broker, policy::JsonObjectReader& params)
{
    params.reject_unknown();
    return {varlink::make_reply({{"features", broker.features().to_json()}}), {}};
}

// Admin methods on the socket are for uid 0 only: there is no polkit
// subject for a socket peer that cannot be raced.
bool is_admin(const policy::Peer& peer)
{
    return peer.uid == 0;
}

VarlinkResponse approve(Broker& broker, const policy::Peer& peer, policy::JsonObjectReader& params)
{
    ApproveRequest req;
    req.program = params.required_string("program", 64);
    req.users = string_list(params, "users");
    req.groups = string_list(params, "groups");
    req.anyone = params.optional_bool("anyone", false);
    req.polkit = params.optional_bool("polkit", false);
    req.signer = params.optional_string("signer", 64, "");
    params.reject_unknown();
    auto g = broker.approve(peer, req, std::string(kTransport));
    if (!g)
        return error_response(g.error());
    bool by_signer = g->match == policy::MatchKind::Signer;
    return {varlink::make_reply({{"program", g->program}, {by_signer ? "signer" : "manifest_sha256", g->match_value}}), {}};
}

VarlinkResponse revoke(Broker& broker, const policy::Peer& peer, policy::JsonObjectReader& params)
{
    auto program = params.required_string("program", 64);
    params.reject_unknown();
    auto removed = broker.revoke(peer, program, std::string(kTransport));
    if (!removed)
        return error_response(removed.error());
    return {varlink::make_reply({{"program", program}, {"removed_approvals", *removed}}), {}};
}

VarlinkResponse reload(Broker& broker, const policy::Peer& peer, policy::JsonObjectReader& params)
{
    params.reject_unknown();
    auto r = broker.reload_as(peer, std::string(kTransport));
    if (!r)
        return error_response(r.error());
    auto snap = broker.snapshot();
    return {varlink::make_reply({{"programs", snap->catalog.entries.size()}, {"grants", snap->grants.grants.size()}}), {}};
}

VarlinkResponse get_info(policy::JsonObjectReader& params)
{
    params.reject_unknown();
    return {varlink::make_reply({{"vendor", "bpfbroker"},
                                 {"product", "bpfbrokerd"},
                                 {"version", "0.1.0"},
                                 {"url", "https://bpfbroker.invalid/"},
                                 {"interfaces", {"org.varlink.service", std::string(kVarlinkInterface)}}}),
            {}};
}

}  // namespace

nlohmann::json handout_info_json(const Handout& h)
{
    nlohmann::json access = nlohmann::json::object();
    for (const auto& [name, mode] : h.map_access)
        access[name] = mode;
    return {{"name", h.name}, {"id", h.prog_id}, {"tag", h.tag},           {"type", h.type},
            {"instance", h.instance}, {"version", h.version}, {"map_access", access}};
}

nlohmann::json listing_json(const ProgramListing& l)
{
    nlohmann::json j = {{"name", l.name},         {"version", l.version},   {"description", l.description},
                        {"state", l.state},       {"instance", l.instance}, {"allowed", l.allowed},
                        {"needs_polkit", l.needs_polkit}};
    if (!l.allowed)
        j["error"] = l.code, j["reason"] = l.reason;
    return j;
}

VarlinkResponse handle_varlink_call(Broker& broker, const policy::Peer& peer, const std::string& method,
                                    const nlohmann::json& parameters)
{
    const std::string prefix = std::string(kVarlinkInterface) + ".";
    try {
        policy::JsonObjectReader params(parameters, "parameters");
        if (method == "org.varlink.service.GetInfo")
            return get_info(params);
        if (method.rfind(prefix, 0) != 0)
            return {varlink::make_method_not_found_reply(method), {}};
        auto member = method.substr(prefix.size());
        if (member == "AcquireProgram")
            return acquire(broker, peer, params);
        if (member == "ListPrograms")
            return list_programs(broker, peer, params);
        if (member == "GetFeatures")
            return get_features(broker, params);
        if (member == "Approve" || member == "Revoke" || member == "Reload") {
            if (!is_admin(peer)) {
                // Named like every other audit record: action=approve program=NAME.
                std::string action = member == "Approve" ? "approve" : member == "Revoke" ? "revoke" : "reload";
                std::string program;
                if (parameters.is_object())
                    if (auto it = parameters.find("program"); it != parameters.end() && it->is_string())
                        program = it->get<std::string>().substr(0, 64);
                auto reason = member + " is for root on the direct socket; use D-Bus with polkit";
                broker.audit(action, std::string(kTransport), program, peer, false, "PermissionDenied", reason);
                return error_response(make_error(ErrorCode::PermissionDenied, reason));
            }
            if (member == "Approve")
                return approve(broker, peer, params);
            if (member == "Revoke")
                return revoke(broker, peer, params);
            return reload(broker, peer, params);
        }
        return {varlink::make_method_not_found_reply(method), {}};
    } catch (const policy::SchemaViolation& v) {
        return {varlink::make_invalid_parameter_reply(v.path, v.reason), {}};
    }
}

}  // namespace bpfbroker::brokerd
