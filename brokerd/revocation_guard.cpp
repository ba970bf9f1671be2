// Writing a live instance's revocation guard; see revocation_guard.h.
#include "brokerd/revocation_guard.h"

#include "brokerd/datasec_variable.h"
#include "base/hex.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace bpfbroker::brokerd {

namespace {

constexpr std::uint32_t kGuardSize = sizeof(std::uint32_t);

Unexpected guard_invalid(std::string_view name, const std::string& why)
{
    return fail(ErrorCode::ManifestInvalid, "$.revocation.guard: \"" + std::string(name) + "\" " + why);
}

}  // namespace

RevocationGuard::RevocationGuard(std::string name, UniqueFd map_fd, std::uint32_t map_id, std::uint32_t value_size,
                                 std::uint32_t offset)
    : name_(std::move(name)), map_fd_(std::move(map_fd)), map_id_(map_id), value_size_(value_size), offset_(offset)
{
}

Result<RevocationGuard> RevocationGuard::locate(bpf_object* loaded, std::string_view name)
{
    // Never .rodata: libbpf freezes it, so a guard there could not be set.
    auto variable = find_datasec_variable(loaded, name, {".bss", ".data"});
    if (!variable)
        return guard_invalid(name, "is not a global variable in .bss or .data of the object");
    if (variable->size != kGuardSize)
        return guard_invalid(name, "is " + std::to_string(variable->size) + " bytes; a guard is a 4-byte __u32");
    bpf_map* map = internal_map_of_section(loaded, variable->section);
    if (map == nullptr || bpf_map__fd(map) < 0)
        return fail(ErrorCode::Internal, "the " + variable->section + " map of the guard was not created");
    UniqueFd fd = UniqueFd::dup_cloexec(bpf_map__fd(map));
    if (!fd)
        return fail(make_system_error("duplicating the fd of the guard's map failed", errno));

    return adopt(std::string(name), std::move(fd), variable->section, variable->offset);
}

Result<RevocationGuard> RevocationGuard::adopt(std::string name, UniqueFd fd, const std::string& what,
                                               std::uint32_t offset)
{
    bpf_map_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0)
        return fail(make_system_error("reading the kernel's info about the guard's map failed", errno));
    if ((info.map_flags & BPF_F_MMAPABLE) == 0)
        return fail(ErrorCode::Unsupported,
                    "the kernel did not make the " + what + " map mmapable; its guard cannot be written alone");
    if (offset + kGuardSize > info.value_size)
        return fail(ErrorCode::Internal, "the guard lies outside its map's value");
    return RevocationGuard(std::move(name), std::move(fd), info.id, info.value_size, offset);
}

Result<RevocationGuard> RevocationGuard::reopen(std::string name, std::uint32_t map_id, std::uint32_t offset,
                                                const std::vector<std::uint32_t>& program_map_ids)
{
    if (std::find(program_map_ids.begin(), program_map_ids.end(), map_id) == program_map_ids.end())
        return fail(ErrorCode::ProgramNotFound, "map " + std::to_string(map_id) + " is not one of the program's");
    UniqueFd fd(bpf_map_get_fd_by_id(map_id));
    if (!fd)
        return fail(ErrorCode::ProgramNotFound, "map " + std::to_string(map_id) + " is gone");
    return adopt(std::move(name), std::move(fd), "guard's", offset);
}

Result<RevocationGuard> RevocationGuard::adopt_stored(std::string name, UniqueFd fd, std::uint32_t map_id,
                                                     std::uint32_t offset,
                                                     const std::vector<std::uint32_t>& program_map_ids)
{
    auto guard = adopt(std::move(name), std::move(fd), "stored guard's", offset);
    if (guard && (guard->map_id() != map_id ||
                  std::find(program_map_ids.begin(), program_map_ids.end(), map_id) == program_map_ids.end()))
        return fail(ErrorCode::ProgramNotFound, "the stored guard is map " + std::to_string(guard->map_id()) +
                                                    ", not the program's map " + std::to_string(map_id));
    return guard;
}

Result<RevocationGuard> RevocationGuard::reopen_of_program(std::uint32_t prog_id, const std::string& tag,
                                                           std::string name, std::uint32_t map_id, std::uint32_t offset)
{
    auto maps = program_map_ids_if_tagged(prog_id, tag);
    if (!maps)
        return fail(ErrorCode::ProgramNotFound, "program " + std::to_string(prog_id) + " is gone");
    return reopen(std::move(name), map_id, offset, *maps);
}

std::optional<std::vector<std::uint32_t>> program_map_ids_if_tagged(std::uint32_t id, const std::string& tag)
{
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    if (!fd)
        return std::nullopt;
    return map_ids_if_tagged(fd, tag);
}

std::optional<std::vector<std::uint32_t>> map_ids_if_tagged(const UniqueFd& fd, const std::string& tag)
{
    std::uint32_t map_ids[64] = {};
    bpf_prog_info info{};
    info.nr_map_ids = 64;
    info.map_ids = reinterpret_cast<std::uintptr_t>(map_ids);
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0 || hex_encode(info.tag, sizeof info.tag) != tag)
        return std::nullopt;
    return std::vector<std::uint32_t>(map_ids, map_ids + std::min<std::uint32_t>(info.nr_map_ids, 64));
}

template <typename F>
Result<void> RevocationGuard::with_mapping(int prot, F&& f) const
{
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t length = (value_size_ + page - 1) / page * page;
    void* base = ::mmap(nullptr, length, prot, MAP_SHARED, map_fd_.get(), 0);
    if (base == MAP_FAILED)
        return fail(make_system_error("mapping the guard's map failed", errno));
    f(reinterpret_cast<std::uint32_t*>(static_cast<char*>(base) + offset_));
    ::munmap(base, length);
    return {};
}

Result<void> RevocationGuard::set(bool revoked) const
{
    const std::uint32_t value = revoked ? 1 : 0;
    return with_mapping(PROT_READ | PROT_WRITE,
                        [value](std::uint32_t* guard) { __atomic_store_n(guard, value, __ATOMIC_SEQ_CST); });
}

Result<bool> RevocationGuard::is_set() const
{
    std::uint32_t value = 0;
    auto mapped = with_mapping(PROT_READ, [&value](std::uint32_t* guard) { value = __atomic_load_n(guard, __ATOMIC_SEQ_CST); });
    if (!mapped)
        return fail(std::move(mapped).error());
    return value != 0;
}

}  // namespace bpfbroker::brokerd
