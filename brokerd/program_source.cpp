// The kernel program source; see program_source.h.
#include "brokerd/program_source.h"

#include "brokerd/limits.h"
#include "brokerd/verified_objects.h"

namespace bpfbroker::brokerd {

namespace {

class KernelProgramSource final : public ProgramSource {
public:
    Result<LoadedInstance> load(const policy::CatalogEntry& entry, const ParameterValues& parameters) override
    {
        if (!entry.manifest)
            return load_instance(entry, parameters);  // refuses it
        auto object = objects_.object_of(entry);
        if (!object)
            return fail(std::move(object).error());
        return load_instance(entry, **object, parameters);
    }
    Result<std::vector<AttachedLink>> attach(const LoadedInstance& instance) override
    {
        return attach_for_caller(instance);
    }
    Result<UniqueFd> map_fd_for_client(const LoadedMap& map) override { return client_map_fd(map); }
    Result<UniqueFd> program_fd_for_client(const UniqueFd& fd) override { return duplicate_for_client(fd); }

private:
    VerifiedObjects objects_{Limits::kVerifiedObjectBytes};
};

}  // namespace

std::unique_ptr<ProgramSource> make_kernel_program_source()
{
    return std::make_unique<KernelProgramSource>();
}

}  // namespace bpfbroker::brokerd
