// The values of a manifest's parameters for one acquire: `bind` ones from
// the kernel's word for the caller (never from the request), `choice` ones
// from the request within the manifest's bounds, or their defaults. The
// loader writes them into the object's .rodata before load.
#pragma once

#include "brokerd/ring_layout.h"
#include "policy/manifest.h"

#include <bpfbroker/result.h>

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace bpfbroker::brokerd {

// Who is calling, as the transport established it (SO_PEERCRED /
// SO_PEERPIDFD, bus credentials): the source of every bound value.
struct CallerIdentity {
    pid_t tgid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    std::uint64_t cgroup_id = 0;
    // io_uring_ops: the caller's ring, as checked against the kernel (ring_attach.h).
    std::optional<RingLayout> ring{};
};

// Parameter name -> value (bools are 0/1).
using ParameterValues = std::map<std::string, std::uint64_t, std::less<>>;

// One value for every manifest parameter. InvalidParameter, naming the
// parameter, when the request names one the manifest lacks, tries to set a
// bound one, or chooses a value outside [min, max].
Result<ParameterValues> resolve_parameters(const policy::Manifest& manifest, const CallerIdentity& caller,
                                           const ParameterValues& requested);

// Bytes the parameter's .rodata variable must have.
std::size_t parameter_size(const policy::ParameterSpec& spec) noexcept;

}  // namespace bpfbroker::brokerd
