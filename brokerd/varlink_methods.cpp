// org.bpfbroker.Broker method handlers for the direct socket; see varlink_methods.h.
#include "brokerd/varlink_methods.h"

#include "brokerd/varlink_method_table.h"
#include "varlink_description.h"  // generated: the IDL text, version, URL

#include <bpfbroker/error_names.h>

#include "wire/varlink_framing.h"

#include <variant>

namespace bpfbroker::brokerd {

namespace {

// org.varlink.service as this service implements it (the calls above).
constexpr std::string_view kServiceDescription = R"(# The Varlink service interface every Varlink service offers.
interface org.varlink.service

method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)

method GetInterfaceDescription(interface: string) -> (description: string)

error InterfaceNotFound (interface: string)
error MethodNotFound (method: string)
error MethodNotImplemented (method: string)
error InvalidParameter (parameter: string)
error PermissionDenied ()
error ExpectedMore ()
)";

VarlinkResponse error_response(const Error& e)
{
    return {varlink::make_error_reply(e.code, e.message), {}};
}

VarlinkResponse reply(nlohmann::json parameters)
{
    return {varlink::make_reply(std::move(parameters)), {}};
}

// The socket never asks polkit: there is no subject for a socket peer that
// cannot be raced. A question from the core is therefore a refusal.
template <typename T>
std::optional<VarlinkResponse> unless_done(const Outcome<T>& o)
{
    if (o.denied())
        return error_response(o.error());
    if (o.needs_polkit())
        return error_response(make_error(ErrorCode::Internal, "the socket cannot ask polkit"));
    return std::nullopt;
}

// AttachRing's `ring`: every layout field, once, nothing else.
std::variant<RingLayout, VarlinkResponse> ring_layout(const CheckedParameters& p)
{
    auto given = p.unsigned_map("ring");
    RingLayout layout;
    const std::pair<const char*, std::uint32_t*> fields[] = {
        {"flags", &layout.flags},           {"sq_entries", &layout.sq_entries}, {"cq_entries", &layout.cq_entries},
        {"cq_head_off", &layout.cq_head_off}, {"cq_tail_off", &layout.cq_tail_off}, {"cqes_off", &layout.cqes_off},
    };
    for (const auto& [name, field] : fields) {
        auto it = given.find(name);
        if (it == given.end() || it->second > UINT32_MAX)
            return VarlinkResponse{varlink::make_invalid_parameter_reply(
                                       "ring", std::string("needs ") + name + ", a 32-bit unsigned value"),
                                   {}};
        *field = static_cast<std::uint32_t>(it->second);
        given.erase(it);
    }
    if (!given.empty())
        return VarlinkResponse{varlink::make_invalid_parameter_reply("ring", "unknown field " + given.begin()->first),
                               {}};
    return layout;
}

VarlinkResponse acquire(Broker& broker, const RequestContext& ctx, const CheckedParameters& p,
                        std::optional<RingRequest> ring = std::nullopt)
{
    AcquireRequest request{p.string("name"), p.unsigned_map("parameters")};
    request.ring = ring;
    auto o = broker.acquire(ctx, request);
    if (auto stop = unless_done(o))
        return std::move(*stop);
    auto answer = to_wire(o.value());
    return {varlink::acquire_reply_message(answer.reply), std::move(answer.fds), true};
}

VarlinkResponse list_programs(Broker& broker, const RequestContext& ctx)
{
    auto listed = broker.list(ctx);
    if (!listed)
        return error_response(listed.error());
    nlohmann::json programs = nlohmann::json::array();
    for (const auto& l : *listed)
        programs.push_back(to_wire(l));
    return reply({{"programs", programs}});
}

VarlinkResponse approve(Broker& broker, const RequestContext& ctx, const CheckedParameters& p)
{
    ApproveRequest req{p.string("program"), p.names("users"), p.names("groups"), p.boolean("anyone"),
                       p.boolean("polkit"), p.string("signer")};
    auto o = broker.approve(ctx, req);
    if (auto stop = unless_done(o))
        return std::move(*stop);
    bool by_signer = o.value().match == policy::MatchKind::Signer;
    return reply({{"program", o.value().program}, {by_signer ? "signer" : "manifest_sha256", o.value().match_value}});
}

VarlinkResponse revoke(Broker& broker, const RequestContext& ctx, const CheckedParameters& p)
{
    auto program = p.string("program");
    auto o = broker.revoke(ctx, RevokeRequest{program});
    if (auto stop = unless_done(o))
        return std::move(*stop);
    return reply({{"program", program},
                  {"removed_approvals", o.value().removed_approvals},
                  {"cut_instances", o.value().instances.cut},
                  {"uncut_instances", o.value().instances.uncut}});
}

VarlinkResponse reload(Broker& broker, const RequestContext& ctx)
{
    auto o = broker.reload(ctx);
    if (auto stop = unless_done(o))
        return std::move(*stop);
    return reply({{"programs", o.value().programs},
                  {"grants", o.value().grants},
                  {"cut_instances", o.value().instances.cut},
                  {"uncut_instances", o.value().instances.uncut}});
}

VarlinkResponse get_info()
{
    return reply({{"vendor", "bpfbroker"},
                  {"product", "bpfbrokerd"},
                  {"version", std::string(kBrokerVersion)},
                  {"url", std::string(kBrokerUrl)},
                  {"interfaces", {std::string(kVarlinkServiceInterface), std::string(kVarlinkInterface)}}});
}

VarlinkResponse get_interface_description(const CheckedParameters& p)
{
    auto interface = p.string("interface");
    if (interface == kVarlinkInterface)
        return reply({{"description", std::string(kBrokerInterfaceDescription)}});
    if (interface == kVarlinkServiceInterface)
        return reply({{"description", std::string(kServiceDescription)}});
    return {{{"error", std::string(kVarlinkInterfaceNotFound)}, {"parameters", {{"interface", interface}}}}, {}};
}

VarlinkResponse dispatch(const MethodSpec& m, Broker& broker, const RequestContext& ctx, const CheckedParameters& p)
{
    switch (m.id) {
    case MethodId::GetInfo:
        return get_info();
    case MethodId::GetInterfaceDescription:
        return get_interface_description(p);
    case MethodId::AcquireProgram:
        return acquire(broker, ctx, p);
    case MethodId::ListPrograms:
        return list_programs(broker, ctx);
    case MethodId::GetFeatures:
        return reply({{"features", broker.features().to_json()}});
    case MethodId::GetMetrics:
        return reply({{"text", broker.metrics_text()}});
    case MethodId::Approve:
        return approve(broker, ctx, p);
    case MethodId::Revoke:
        return revoke(broker, ctx, p);
    case MethodId::Reload:
        return reload(broker, ctx);
    case MethodId::AttachRing: {
        auto layout = ring_layout(p);
        if (auto* bad = std::get_if<VarlinkResponse>(&layout))
            return std::move(*bad);
        return acquire(broker, ctx, p,
                       RingRequest{static_cast<int>(p.unsigned_value("ring_fd")), std::get<RingLayout>(layout)});
    }
    }
    return error_response(make_error(ErrorCode::Internal, "no handler"));
}

}  // namespace

AcquireAnswer to_wire(Handout& h)
{
    AcquireAnswer a;
    // The reply numbers the fds in the order reply_fds() takes them:
    // the program, the links, the maps.
    const bool has_program = h.program.valid();
    std::size_t index = 0;
    if (has_program)
        a.reply.program = index++;
    if (!h.links.empty()) {
        auto& links = a.reply.links.emplace();
        for (const auto& l : h.links)
            links[l.program] = index++;
    }
    ProgramInfo& info = a.reply.info;
    for (const auto& m : h.maps) {
        info.map_access[m.name] = std::string(policy::client_access_name(m.access));
        a.reply.maps[m.name] = index++;
    }
    a.fds = reply_fds(h);
    // Moved, not copied: the hand-out is spent on its reply.
    info.name = std::move(h.name);
    info.version = std::move(h.version);
    info.type = std::string(policy::program_type_name(h.type));
    info.instance = std::string(policy::instance_mode_name(h.instance));
    info.id = h.prog_id;
    info.tag = std::move(h.tag);
    info.attach = std::move(h.attach);
    info.parameters = std::move(h.parameters);
    return a;
}

std::vector<HandedFd> reply_fds(Handout& h)
{
    std::vector<HandedFd> fds;
    fds.reserve(1 + h.links.size() + h.maps.size());
    if (h.program)
        fds.push_back(std::move(h.program));
    for (auto& l : h.links)
        fds.emplace_back(std::move(l.fd));
    for (auto& m : h.maps)
        fds.emplace_back(std::move(m.fd));
    return fds;
}

nlohmann::json to_wire(const ProgramListing& l)
{
    nlohmann::json j = {{"name", l.name},
                        {"version", l.version},
                        {"description", l.description},
                        {"state", std::string(policy::entry_state_name(l.state))},
                        {"instance", l.instance ? std::string(policy::instance_mode_name(*l.instance)) : ""},
                        {"allowed", l.allowed},
                        {"needs_polkit", l.needs_polkit},
                        {"cut_live", l.cut_live}};
    if (l.code)
        j["error"] = std::string(error_code_name(*l.code)), j["reason"] = l.reason;
    return j;
}

EncodedResponse encode_for_socket(VarlinkResponse resp)
{
    auto bytes = varlink::encode_message(resp.message, varlink::kMaxReplySize);
    if (!bytes) {
        bytes = varlink::encode_message(varlink::make_error_reply(ErrorCode::Internal, "reply too large"));
        resp.fds.clear();
    }
    return {std::move(*bytes), std::move(resp.fds), resp.reply};
}

EncodedResponse handle_acquire_call(Broker& broker, const RequestContext& ctx, const varlink::AcquireCall& call,
                                    AcquireReplyCache* cache)
{
    auto o = broker.acquire(ctx, AcquireRequest{call.name, call.parameters});
    if (auto stop = unless_done(o))
        return encode_for_socket(std::move(*stop));
    Handout& h = o.value();
    std::optional<HandoutShape> shape;
    if (cache) {
        if (const std::string* bytes = cache->find(h))
            return {*bytes, reply_fds(h), true};
        shape = HandoutShape::of(h);
    }
    auto answer = to_wire(h);
    if (auto bytes = varlink::encode_acquire_reply(answer.reply)) {
        if (shape)
            cache->remember(std::move(*shape), *bytes);
        return {std::move(*bytes), std::move(answer.fds), true};
    }
    // Refused by the strict encoder (a string not UTF-8, a reply too
    // large): answered as the general path answers it.
    return encode_for_socket({varlink::acquire_reply_message(answer.reply), std::move(answer.fds), true});
}

VarlinkResponse handle_varlink_call(Broker& broker, const policy::Peer& peer, const std::string& method,
                                    const nlohmann::json& parameters, bool oneway, int caller_pidfd)
{
    auto found = find_method(method);
    if (auto* err = std::get_if<DispatchError>(&found))
        return {std::move(err->reply), {}, !oneway};
    const auto& spec = *std::get<const MethodSpec*>(found);
    // A oneway call of a method with effects is dropped without acting (an
    // acquire would load a program whose fds nobody receives, escaping the
    // reply backpressure).
    if (oneway && !spec.oneway_allowed)
        return {{}, {}, false};
    if (auto bad = check_parameters(spec, parameters))
        return {std::move(bad->reply), {}, !oneway};
    auto resp = dispatch(spec, broker, socket_context(peer, caller_pidfd), CheckedParameters(parameters));
    resp.reply = !oneway;
    return resp;
}


Result<ParsedFrame> parse_frame(std::string_view frame)
{
    ParsedFrame parsed;
    if ((parsed.acquire = fast_acquire_call(frame)))
        return parsed;
    auto message = varlink::parse_message(frame);
    if (!message)
        return fail(std::move(message).error());
    auto call = varlink::parse_call(*message);
    if (!call)
        return fail(std::move(call).error());
    parsed.call = std::move(*call);
    return parsed;
}

RequestContext socket_context(const policy::Peer& peer, int caller_pidfd)
{
    RequestContext ctx{TransportKind::Socket, peer, {}, false};
    ctx.caller_pidfd = caller_pidfd;
    return ctx;
}

EncodedResponse answer_frame(Broker& broker, const RequestContext& ctx, const ParsedFrame& frame,
                             AcquireReplyCache* cache)
{
    if (frame.acquire)
        return handle_acquire_call(broker, ctx, *frame.acquire, cache);
    const auto& call = frame.call;
    if (call.more || call.upgrade)
        return encode_for_socket({varlink::make_error_reply(
            ErrorCode::InvalidParameter, "this service answers every call once: \"more\" and \"upgrade\" are not supported"),
                                  {}});
    return encode_for_socket(
        handle_varlink_call(broker, ctx.peer, call.method, call.parameters, call.oneway, ctx.caller_pidfd));
}

}  // namespace bpfbroker::brokerd
