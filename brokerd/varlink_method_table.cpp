// The Varlink method table; see varlink_method_table.h.
#include "brokerd/varlink_method_table.h"

#include "brokerd/limits.h"

#include <bpfbroker/error_names.h>

#include "wire/varlink_framing.h"

#include <algorithm>
#include <array>

namespace bpfbroker::brokerd {

namespace {

constexpr std::size_t kMaxNames = Limits::kApproveNames;
constexpr std::size_t kMaxParameters = Limits::kChosenParameters;

constexpr std::array kGetInterfaceDescription{FieldSpec{"interface", FieldType::String, true, 256}};
constexpr std::array kAcquire{FieldSpec{"name", FieldType::String, true, 64},
                              FieldSpec{"parameters", FieldType::UnsignedMap, false, 64, kMaxParameters}};
constexpr std::array kApprove{FieldSpec{"program", FieldType::String, true, 64},
                              FieldSpec{"users", FieldType::NameList, false, 64, kMaxNames},
                              FieldSpec{"groups", FieldType::NameList, false, 64, kMaxNames},
                              FieldSpec{"anyone", FieldType::Bool}, FieldSpec{"polkit", FieldType::Bool},
                              FieldSpec{"signer", FieldType::String, false, 64}};
// AttachRing: ring_fd is ONE fd number in the caller's table (a second one,
// or an array, is refused here); ring holds the layout io_uring_setup gave.
constexpr std::array kAttachRing{FieldSpec{"name", FieldType::String, true, 64},
                                 FieldSpec{"ring_fd", FieldType::Unsigned, true, 0x7fffffff},
                                 FieldSpec{"ring", FieldType::UnsignedMap, true, 16, 8},
                                 FieldSpec{"parameters", FieldType::UnsignedMap, false, 64, kMaxParameters}};
constexpr std::array kRevoke{FieldSpec{"program", FieldType::String, true, 64}};

constexpr std::string_view kBroker = kVarlinkInterface;
constexpr std::string_view kService = kVarlinkServiceInterface;

// Oneway is allowed only where a call has no effect worth a reply: an
// acquire would load a program whose fds nobody receives, an admin call
// would change policy with no one told whether it worked.
constexpr std::array<MethodSpec, 10> kMethods{{
    {MethodId::GetInfo, kService, "GetInfo", {}, true, false},
    {MethodId::GetInterfaceDescription, kService, "GetInterfaceDescription", kGetInterfaceDescription, true, false},
    {MethodId::AcquireProgram, kBroker, "AcquireProgram", kAcquire, false, false},
    {MethodId::ListPrograms, kBroker, "ListPrograms", {}, true, false},
    {MethodId::GetFeatures, kBroker, "GetFeatures", {}, true, false},
    {MethodId::GetMetrics, kBroker, "GetMetrics", {}, true, false},
    {MethodId::Approve, kBroker, "Approve", kApprove, false, true},
    {MethodId::Revoke, kBroker, "Revoke", kRevoke, false, true},
    {MethodId::Reload, kBroker, "Reload", {}, false, true},
    {MethodId::AttachRing, kBroker, "AttachRing", kAttachRing, false, false},
}};

DispatchError invalid(std::string_view field, std::string_view reason)
{
    return {varlink::make_invalid_parameter_reply(field, reason)};
}

bool string_within(const nlohmann::json& v, std::size_t max_len)
{
    return v.is_string() && v.get_ref<const std::string&>().size() <= max_len;
}

std::optional<DispatchError> check_field(const FieldSpec& f, const nlohmann::json& v)
{
    switch (f.type) {
    case FieldType::String:
        if (!string_within(v, f.max_len))
            return invalid(f.name, "expected a string of at most " + std::to_string(f.max_len) + " bytes");
        return std::nullopt;
    case FieldType::Bool:
        if (!v.is_boolean())
            return invalid(f.name, "expected a boolean");
        return std::nullopt;
    case FieldType::NameList:
        if (!v.is_array() || v.size() > f.max_items)
            return invalid(f.name, "expected an array of at most " + std::to_string(f.max_items) + " names");
        for (const auto& item : v)
            if (!item.is_number_unsigned() && !string_within(item, f.max_len))
                return invalid(f.name, "expected names of at most " + std::to_string(f.max_len) + " bytes or ids");
        return std::nullopt;
    case FieldType::UnsignedMap:
        if (!v.is_object() || v.size() > f.max_items)
            return invalid(f.name, "expected an object of at most " + std::to_string(f.max_items) + " values");
        for (const auto& [key, item] : v.items())
            if (key.size() > f.max_len || !item.is_number_unsigned())
                return invalid(f.name, "expected names of at most " + std::to_string(f.max_len) +
                                           " bytes mapped to unsigned integers");
        return std::nullopt;
    case FieldType::Unsigned:
        if (!v.is_number_unsigned() || v.get<std::uint64_t>() > f.max_len)
            return invalid(f.name, "expected one unsigned integer of at most " + std::to_string(f.max_len));
        return std::nullopt;
    }
    return invalid(f.name, "unknown field type");
}

// The typed twins of check_field for the two fields of an acquire.
bool string_within_spec(const FieldSpec& f, std::string_view s)
{
    return s.size() <= f.max_len;
}

bool unsigned_map_within_spec(const FieldSpec& f, const std::map<std::string, std::uint64_t>& m)
{
    return m.size() <= f.max_items &&
           std::all_of(m.begin(), m.end(), [&f](const auto& kv) { return kv.first.size() <= f.max_len; });
}

}  // namespace

std::span<const MethodSpec> varlink_methods()
{
    return kMethods;
}

std::variant<const MethodSpec*, DispatchError> find_method(std::string_view method)
{
    auto dot = method.rfind('.');
    auto interface = dot == std::string_view::npos ? std::string_view() : method.substr(0, dot);
    auto member = dot == std::string_view::npos ? method : method.substr(dot + 1);
    bool known_interface = false;
    for (const auto& m : kMethods) {
        if (m.interface != interface)
            continue;
        known_interface = true;
        if (m.member == member)
            return &m;
    }
    if (!known_interface)
        return DispatchError{{{"error", std::string(kVarlinkInterfaceNotFound)},
                              {"parameters", {{"interface", std::string(interface)}}}}};
    return DispatchError{varlink::make_method_not_found_reply(method)};
}

std::optional<DispatchError> check_parameters(const MethodSpec& spec, const nlohmann::json& parameters)
{
    if (!parameters.is_object())
        return invalid("parameters", "expected an object");
    for (auto it = parameters.begin(); it != parameters.end(); ++it) {
        const std::string& key = it.key();
        auto f = std::find_if(spec.parameters.begin(), spec.parameters.end(),
                              [&key](const FieldSpec& fs) { return fs.name == key; });
        if (f == spec.parameters.end())
            return invalid(key.size() <= 64 ? key : key.substr(0, 64) + "...", "unknown parameter");
        if (auto bad = check_field(*f, it.value()))
            return bad;
    }
    for (const auto& f : spec.parameters)
        if (f.required && !parameters.contains(f.name))
            return invalid(f.name, "missing");
    return std::nullopt;
}

std::optional<varlink::AcquireCall> fast_acquire_call(std::string_view frame)
{
    if (!varlink::looks_like_acquire_call(frame))
        return std::nullopt;
    auto call = varlink::decode_acquire_call(frame);
    if (!call || call->oneway || call->more || call->upgrade)
        return std::nullopt;
    static_assert(kAcquire[0].name == "name" && kAcquire[1].name == "parameters");
    if (!string_within_spec(kAcquire[0], call->name) || !unsigned_map_within_spec(kAcquire[1], call->parameters))
        return std::nullopt;
    return std::move(*call);
}

std::string CheckedParameters::string(std::string_view name) const
{
    auto it = p_.find(std::string(name));
    return it == p_.end() ? std::string() : it->get<std::string>();
}

bool CheckedParameters::boolean(std::string_view name) const
{
    auto it = p_.find(std::string(name));
    return it != p_.end() && it->get<bool>();
}

std::vector<std::string> CheckedParameters::names(std::string_view name) const
{
    std::vector<std::string> out;
    auto it = p_.find(std::string(name));
    if (it == p_.end())
        return out;
    for (const auto& item : *it)
        out.push_back(item.is_string() ? item.get<std::string>() : std::to_string(item.get<std::uint64_t>()));
    return out;
}

std::map<std::string, std::uint64_t> CheckedParameters::unsigned_map(std::string_view name) const
{
    std::map<std::string, std::uint64_t> out;
    auto it = p_.find(std::string(name));
    if (it == p_.end())
        return out;
    for (const auto& [key, item] : it->items())
        out.emplace(key, item.get<std::uint64_t>());
    return out;
}

std::uint64_t CheckedParameters::unsigned_value(std::string_view name) const
{
    auto it = p_.find(std::string(name));
    return it == p_.end() ? 0 : it->get<std::uint64_t>();
}

}  // namespace bpfbroker::brokerd
