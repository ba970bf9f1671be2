// Resolving parameter values; see parameter_values.h.
#include "brokerd/parameter_values.h"

#include <algorithm>

namespace bpfbroker::brokerd {

namespace {

using policy::ParameterBinding;
using policy::ParameterSpec;

std::uint64_t bound_value(ParameterBinding binding, const CallerIdentity& caller)
{
    const RingLayout ring = caller.ring.value_or(RingLayout{});
    switch (binding) {
    case ParameterBinding::CallerTgid: return static_cast<std::uint64_t>(caller.tgid);
    case ParameterBinding::CallerUid: return caller.uid;
    case ParameterBinding::CallerCgroupId: return caller.cgroup_id;
    case ParameterBinding::RingCqHeadOff: return ring.cq_head_off;
    case ParameterBinding::RingCqTailOff: return ring.cq_tail_off;
    case ParameterBinding::RingCqesOff: return ring.cqes_off;
    case ParameterBinding::RingCqEntries: return ring.cq_entries;
    case ParameterBinding::RingSqEntries: return ring.sq_entries;
    case ParameterBinding::RingFlags: return ring.flags;
    }
    return 0;
}

Unexpected invalid(const std::string& name, const std::string& why)
{
    return fail(ErrorCode::InvalidParameter, "parameters." + name + ": " + why);
}

}  // namespace

std::size_t parameter_size(const ParameterSpec& spec) noexcept
{
    if (spec.choice)
        return policy::choice_type_size(spec.choice->type);
    // pid_t and uid_t are 32 bits in the kernel; cgroup ids are 64.
    return spec.bind == ParameterBinding::CallerCgroupId ? 8 : 4;
}

Result<ParameterValues> resolve_parameters(const policy::Manifest& manifest, const CallerIdentity& caller,
                                           const ParameterValues& requested)
{
    for (const auto& [name, value] : requested) {
        auto spec = std::find_if(manifest.parameters.begin(), manifest.parameters.end(),
                                 [&](const ParameterSpec& p) { return p.name == name; });
        if (spec == manifest.parameters.end())
            return invalid(name, "program \"" + manifest.name + "\" has no such parameter");
        if (spec->bind)
            return invalid(name, "is bound to " + std::string(policy::parameter_binding_name(*spec->bind)) +
                                     "; the broker sets it, a request cannot");
        if (value < spec->choice->min || value > spec->choice->max)
            return invalid(name, std::to_string(value) + " lies outside [" + std::to_string(spec->choice->min) +
                                     ", " + std::to_string(spec->choice->max) + "]");
    }
    ParameterValues values;
    for (const auto& spec : manifest.parameters) {
        if (spec.bind && policy::is_ring_binding(*spec.bind)) {
            if (!caller.ring)
                return fail(ErrorCode::Internal, "parameter " + spec.name + " binds the caller's ring, and the "
                                                                           "request named none");
            values[spec.name] = bound_value(*spec.bind, caller);
            continue;
        }
        if (spec.bind) {
            // 0 is no process, uid and cgroup: fail closed rather than scope
            // a program to "whatever runs with id 0" (interrupt context).
            const std::uint64_t value = bound_value(*spec.bind, caller);
            if (value == 0 && *spec.bind != ParameterBinding::CallerUid)
                return fail(ErrorCode::Internal, "the transport gave no " +
                                                     std::string(policy::parameter_binding_name(*spec.bind)) +
                                                     " for parameter " + spec.name);
            values[spec.name] = value;
            continue;
        }
        auto chosen = requested.find(spec.name);
        values[spec.name] = chosen != requested.end() ? chosen->second : spec.choice->default_value;
    }
    return values;
}

}  // namespace bpfbroker::brokerd
