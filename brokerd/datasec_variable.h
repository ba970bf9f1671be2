// Where a global variable of a BPF object lives: its section's internal map
// (.rodata, .bss, .data) and its offset and size in that map's one value,
// read from the object's BTF as libbpf laid it out at open time (libbpf
// fills in DATASEC sizes and variable offsets while opening).
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::brokerd {

struct DatasecVariable {
    std::string section;  // ".rodata", ".bss" or ".data"
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
};

// The variable `name` in the first of `sections` whose DATASEC holds it, or
// nullopt (no BTF, no such section, no such variable).
std::optional<DatasecVariable> find_datasec_variable(const bpf_object* object, std::string_view name,
                                                     std::initializer_list<std::string_view> sections);

// libbpf's internal map for `section` (its name is a prefix of the object's
// name followed by the section name), or nullptr.
bpf_map* internal_map_of_section(bpf_object* object, std::string_view section);

}  // namespace bpfbroker::brokerd
