// The fake program source; see fake_program_source.h.
#include "support/fake_program_source.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>

namespace bpfbroker::test_support {

namespace {

Result<UniqueFd> placeholder_fd(const std::string& name)
{
    UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC));
    if (!fd)
        return fail(make_system_error("memfd_create", errno));
    return fd;
}

Result<UniqueFd> duplicate(const UniqueFd& fd)
{
    UniqueFd dup(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
    if (!dup)
        return fail(make_system_error("F_DUPFD_CLOEXEC", errno));
    return dup;
}

}  // namespace

Result<brokerd::LoadedInstance> FakeProgramSource::load(const policy::CatalogEntry& entry,
                                                         const brokerd::ParameterValues& parameters)
{
    if (!entry.manifest)
        return fail(ErrorCode::ManifestInvalid, "no manifest");
    ++loads_;
    if (while_loading)
        while_loading();
    brokerd::LoadedInstance inst;
    for (const auto& p : entry.manifest->programs) {
        auto fd = placeholder_fd("fake-prog");
        if (!fd)
            return fail(std::move(fd).error());
        inst.programs.push_back({p.name, p.type, std::move(*fd), next_id_++, "0011223344556677", p.attach});
    }
    for (const auto& m : entry.manifest->maps) {
        auto fd = placeholder_fd("fake-map");
        if (!fd)
            return fail(std::move(fd).error());
        inst.maps.push_back({m.name, m.client_access, std::move(*fd), next_id_++});
    }
    inst.parameters = parameters;
    return inst;
}

Result<std::vector<brokerd::AttachedLink>> FakeProgramSource::attach(const brokerd::LoadedInstance& /*instance*/)
{
    return fail(ErrorCode::Unsupported, "the fake program source attaches nothing");
}

Result<UniqueFd> FakeProgramSource::map_fd_for_client(const brokerd::LoadedMap& map)
{
    return duplicate(map.fd);
}

Result<UniqueFd> FakeProgramSource::program_fd_for_client(const UniqueFd& fd)
{
    return duplicate(fd);
}

}  // namespace bpfbroker::test_support
