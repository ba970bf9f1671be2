// Locating global variables through the object's BTF; see datasec_variable.h.
#include "brokerd/datasec_variable.h"

#include <bpf/btf.h>

namespace bpfbroker::brokerd {

std::optional<DatasecVariable> find_datasec_variable(const bpf_object* object, std::string_view name,
                                                     std::initializer_list<std::string_view> sections)
{
    const btf* types = bpf_object__btf(object);
    if (types == nullptr)
        return std::nullopt;
    for (std::string_view section : sections) {
        const std::string section_name(section);
        const int id = btf__find_by_name_kind(types, section_name.c_str(), BTF_KIND_DATASEC);
        if (id <= 0)
            continue;
        const btf_type* datasec = btf__type_by_id(types, static_cast<__u32>(id));
        const btf_var_secinfo* vars = btf_var_secinfos(datasec);
        for (unsigned i = 0; i < btf_vlen(datasec); ++i) {
            const btf_type* var = btf__type_by_id(types, vars[i].type);
            if (var == nullptr || !btf_is_var(var))
                continue;
            if (name == btf__name_by_offset(types, var->name_off))
                return DatasecVariable{section_name, vars[i].offset, vars[i].size};
        }
    }
    return std::nullopt;
}

bpf_map* internal_map_of_section(bpf_object* object, std::string_view section)
{
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object) {
        if (!bpf_map__is_internal(map))
            continue;
        std::string_view map_name = bpf_map__name(map);
        if (map_name.ends_with(section))
            return map;
    }
    return nullptr;
}

}  // namespace bpfbroker::brokerd
