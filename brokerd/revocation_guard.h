// The daemon's handle on one live instance's revocation guard: the writable
// fd of the internal map (.bss or .data) that holds the guard variable and
// its offset there. Clients never receive this fd (nor could they open the
// map by id: that needs CAP_SYS_ADMIN).
//
// The guard is written through a shared mapping of the map, four bytes with
// one atomic store, not with BPF_MAP_UPDATE_ELEM: the section is one array
// value, and an update would write the whole value, putting back stale
// copies of any other variable the program changed in between.
#pragma once

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <bpf/libbpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::brokerd {

// The map ids of program `id` while the kernel has it with tag `tag` (hex);
// nullopt when it is gone or the id names another program. The probe fd is
// closed at once, so asking never keeps a program alive.
std::optional<std::vector<std::uint32_t>> program_map_ids_if_tagged(std::uint32_t id, const std::string& tag);
// The same for the program behind `fd` (the caller keeps it open).
std::optional<std::vector<std::uint32_t>> map_ids_if_tagged(const UniqueFd& fd, const std::string& tag);

class RevocationGuard {
public:
    // Finds `name` in .bss or .data of a loaded object and keeps a CLOEXEC
    // duplicate of that map's fd. ManifestInvalid (naming $.revocation.guard)
    // when the object has no such variable there, or it is not 4 bytes;
    // Unsupported when the kernel did not make the map mmapable.
    static Result<RevocationGuard> locate(bpf_object* loaded, std::string_view name);

    // The guard of an instance loaded before a restart: map `map_id`, which
    // must be one of `program_map_ids` (the program's own maps, whose tag
    // the caller checked), re-opened by id (root), `name` at `offset`.
    // ProgramNotFound when the map is not the program's or is gone;
    // Unsupported when it is not mmapable; Internal when the offset lies outside.
    static Result<RevocationGuard> reopen(std::string name, std::uint32_t map_id, std::uint32_t offset,
                                          const std::vector<std::uint32_t>& program_map_ids);

    // The guard `name` at `offset` in map `map_id` of live program
    // `prog_id`, re-opened by id (root) only while that program exists with
    // tag `tag` and the map is one of its own: a reused id is never taken
    // for the instance. ProgramNotFound when the program is gone (or the id
    // names another program now); otherwise as reopen().
    static Result<RevocationGuard> reopen_of_program(std::uint32_t prog_id, const std::string& tag, std::string name,
                                                     std::uint32_t map_id, std::uint32_t offset);

    // The guard of an instance kept by the service manager's fd store
    // (fd_store.h) and handed back at a restart: `fd` must be map `map_id`,
    // one of `program_map_ids` (as reopen()). ProgramNotFound when it is
    // another map: the store and the journal disagree.
    static Result<RevocationGuard> adopt_stored(std::string name, UniqueFd fd, std::uint32_t map_id,
                                                std::uint32_t offset, const std::vector<std::uint32_t>& program_map_ids);

    // Sets the guard to 1 (revoked) or back to 0. SystemError on failure.
    [[nodiscard]] Result<void> set(bool revoked) const;
    // Reads the guard as the program sees it.
    [[nodiscard]] Result<bool> is_set() const;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::uint32_t offset() const noexcept { return offset_; }
    [[nodiscard]] std::uint32_t map_id() const noexcept { return map_id_; }
    // The map's fd, to give the service manager a copy; never a client.
    [[nodiscard]] int map_fd() const noexcept { return map_fd_.get(); }

private:
    // Checks the map behind `fd` (mmapable, the guard inside its value).
    static Result<RevocationGuard> adopt(std::string name, UniqueFd fd, const std::string& what, std::uint32_t offset);
    RevocationGuard(std::string name, UniqueFd map_fd, std::uint32_t map_id, std::uint32_t value_size,
                    std::uint32_t offset);
    // Maps the section, calls f(pointer to the guard), unmaps.
    template <typename F>
    Result<void> with_mapping(int prot, F&& f) const;

    std::string name_;
    UniqueFd map_fd_;
    std::uint32_t map_id_ = 0;
    std::uint32_t value_size_ = 0;
    std::uint32_t offset_ = 0;
};

}  // namespace bpfbroker::brokerd
