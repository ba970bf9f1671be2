// The seam between the core and the kernel: how the Broker loads an entry
// and makes the fds a client receives. The daemon uses the kernel loader
// (brokerd/program_loader's functions); unit tests inject one that makes
// fds without BPF, so the core's decisions are tested without root.
#pragma once

#include "brokerd/bpf_link.h"
#include "brokerd/program_loader.h"
#include "brokerd/ring_attach.h"

#include <memory>

namespace bpfbroker::brokerd {

class ProgramSource {
public:
    virtual ~ProgramSource() = default;
    // See load_instance().
    virtual Result<LoadedInstance> load(const policy::CatalogEntry& entry, const ParameterValues& parameters) = 0;
    // See attach_for_caller().
    virtual Result<std::vector<AttachedLink>> attach(const LoadedInstance& instance) = 0;
    // See register_on_ring(); the kernel's unless a test overrides it.
    virtual Result<UniqueFd> register_on_ring(const LoadedInstance& instance, const CallerRing& ring)
    {
        return brokerd::register_on_ring(instance, ring);
    }
    // See client_map_fd().
    virtual Result<UniqueFd> map_fd_for_client(const LoadedMap& map) = 0;
    // See duplicate_for_client().
    virtual Result<UniqueFd> program_fd_for_client(const UniqueFd& fd) = 0;
};

// The real one: loads into the kernel.
std::unique_ptr<ProgramSource> make_kernel_program_source();

}  // namespace bpfbroker::brokerd
