// Loads a verified catalog entry from memory and turns the result into
// CLOEXEC fds; see program_loader.h.
#include "brokerd/program_loader.h"

#include "brokerd/datasec_variable.h"
#include "brokerd/libbpf_handles.h"

#include "base/hex.h"

#include <bpfbroker/kernel_uapi.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace bpfbroker::brokerd {
namespace {

using policy::CatalogEntry;
using policy::ClientAccess;
using policy::Manifest;
using policy::ProgramType;

bpf_prog_type kernel_type_of(ProgramType type) noexcept
{
    switch (type) {
    case ProgramType::SocketFilter:
        return BPF_PROG_TYPE_SOCKET_FILTER;
    case ProgramType::SkReuseport:
        return BPF_PROG_TYPE_SK_REUSEPORT;
    case ProgramType::Tracepoint:
        return BPF_PROG_TYPE_TRACEPOINT;
    case ProgramType::RawTracepoint:
        return BPF_PROG_TYPE_RAW_TRACEPOINT;
    case ProgramType::IoUringOps:
        return BPF_PROG_TYPE_STRUCT_OPS;
    }
    return BPF_PROG_TYPE_UNSPEC;
}

std::string kernel_type_text(bpf_prog_type type)
{
    if (const char* text = libbpf_bpf_prog_type_str(type); text != nullptr)
        return text;
    return "unknown program type " + std::to_string(static_cast<int>(type));
}

std::string quoted(std::string_view s)
{
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out += s;
    out += '"';
    return out;
}

// The end of a verifier log, cut at a line start when trimmed: the
// verifier's reason for refusing is the last thing it writes.
std::string log_tail(std::string_view log)
{
    if (log.size() <= kVerifierLogDetailBytes)
        return std::string(log);
    std::string_view tail = log.substr(log.size() - kVerifierLogDetailBytes);
    if (auto newline = tail.find('\n'); newline != std::string_view::npos && newline + 1 < tail.size())
        tail.remove_prefix(newline + 1);
    std::string out = "[... start of the verifier log trimmed ...]\n";
    out += tail;
    return out;
}

Unexpected manifest_mismatch(const CatalogEntry& entry, const std::string& what)
{
    return fail(ErrorCode::ManifestInvalid, "object of " + quoted(entry.name) + " does not match its manifest: " + what);
}

// The entry points and user maps of an opened object, in object order.
struct ObjectContents {
    std::vector<bpf_program*> programs;
    std::vector<bpf_map*> user_maps;
    std::vector<bpf_map*> internal_maps;
    std::vector<bpf_map*> struct_ops_maps;  // values of .struct_ops sections
};

ObjectContents list_contents(bpf_object* object)
{
    ObjectContents contents;
    bpf_program* program = nullptr;
    bpf_object__for_each_program(program, object) {
        contents.programs.push_back(program);
    }
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object) {
        if (bpf_map__is_internal(map))
            contents.internal_maps.push_back(map);
        else if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS)
            contents.struct_ops_maps.push_back(map);
        else
            contents.user_maps.push_back(map);
    }
    return contents;
}

bpf_program* find_program(const ObjectContents& contents, std::string_view name)
{
    for (bpf_program* p : contents.programs)
        if (name == bpf_program__name(p))
            return p;
    return nullptr;
}

bpf_map* find_map(const std::vector<bpf_map*>& maps, std::string_view name)
{
    for (bpf_map* m : maps)
        if (name == bpf_map__name(m))
            return m;
    return nullptr;
}

// The attach point a section name spells ("raw_tp/NAME", "tracepoint/CAT/NAME"),
// or "" when it names none.
std::string_view section_attach_point(std::string_view section)
{
    for (std::string_view prefix : {"raw_tracepoint/", "raw_tp/", "tracepoint/", "tp/"})
        if (section.starts_with(prefix))
            return section.substr(prefix.size());
    return {};
}

// Everything the object holds must be in the manifest and vice versa, with
// the types libbpf derived from the ELF sections, before the kernel sees it.
Result<void> check_against_manifest(const CatalogEntry& entry, const ObjectContents& contents)
{
    const Manifest& manifest = *entry.manifest;

    for (std::size_t i = 0; i < manifest.programs.size(); ++i)
        for (std::size_t j = i + 1; j < manifest.programs.size(); ++j)
            if (manifest.programs[i].name == manifest.programs[j].name)
                return manifest_mismatch(entry, "the manifest lists program " + quoted(manifest.programs[i].name) +
                                                    " twice");
    for (std::size_t i = 0; i < manifest.maps.size(); ++i)
        for (std::size_t j = i + 1; j < manifest.maps.size(); ++j)
            if (manifest.maps[i].name == manifest.maps[j].name)
                return manifest_mismatch(entry, "the manifest lists map " + quoted(manifest.maps[i].name) + " twice");

    for (bpf_program* program : contents.programs) {
        const std::string name = bpf_program__name(program);
        const policy::ProgramSpec* spec = nullptr;
        for (const auto& s : manifest.programs)
            if (s.name == name)
                spec = &s;
        if (spec == nullptr)
            return manifest_mismatch(entry, "program " + quoted(name) + " (section " +
                                                quoted(bpf_program__section_name(program)) +
                                                ") is not listed in the manifest");
        const bpf_prog_type actual = bpf_program__type(program);
        if (actual != kernel_type_of(spec->type))
            return manifest_mismatch(entry, "program " + quoted(name) + " is " +
                                                std::string(policy::program_type_name(spec->type)) +
                                                " in the manifest but its section " +
                                                quoted(bpf_program__section_name(program)) + " makes it " +
                                                kernel_type_text(actual));
        // The manifest's attach point is the one the broker uses; a section
        // that names another would make the object say one thing and do another.
        const std::string_view in_section = section_attach_point(bpf_program__section_name(program));
        if (policy::is_broker_attached(spec->type) && !in_section.empty() && in_section != spec->attach)
            return manifest_mismatch(entry, "program " + quoted(name) + " attaches to " + quoted(spec->attach) +
                                                " in the manifest but its section " +
                                                quoted(bpf_program__section_name(program)) + " names " +
                                                quoted(in_section));
    }
    // One io_uring_bpf_ops value per ring program, none anywhere else: a
    // struct_ops value is registered only by ring_attach, per ring.
    const bool ring_attached = policy::is_ring_attached(manifest.programs.front().type);
    if (ring_attached && contents.struct_ops_maps.size() != 1)
        return manifest_mismatch(entry, "an io_uring_ops object defines exactly one struct io_uring_bpf_ops value "
                                        "in SEC(\".struct_ops\"), this one " +
                                            std::to_string(contents.struct_ops_maps.size()));
    if (!ring_attached && !contents.struct_ops_maps.empty())
        return manifest_mismatch(entry, "the object defines a struct_ops value; only io_uring_ops programs may");
    for (const auto& spec : manifest.programs)
        if (find_program(contents, spec.name) == nullptr)
            return manifest_mismatch(entry, "the manifest lists program " + quoted(spec.name) +
                                                " but the object has no such entry point");

    for (bpf_map* map : contents.user_maps) {
        const std::string name = bpf_map__name(map);
        bool listed = false;
        for (const auto& s : manifest.maps)
            listed = listed || s.name == name;
        if (!listed)
            return manifest_mismatch(entry, "map " + quoted(name) + " is not listed in the manifest");
        // A pinned map would be shared through bpffs with whoever opens the
        // path, and reused from there if someone else put a map at it first.
        if (const char* pin_path = bpf_map__pin_path(map); pin_path != nullptr)
            return manifest_mismatch(entry, "map " + quoted(name) + " asks to be pinned at " + quoted(pin_path) +
                                                "; the broker never pins maps");
    }
    for (const auto& spec : manifest.maps) {
        if (find_map(contents.user_maps, spec.name) != nullptr)
            continue;
        if (find_map(contents.internal_maps, spec.name) != nullptr)
            return manifest_mismatch(entry, "the manifest lists map " + quoted(spec.name) +
                                                ", which is one of libbpf's internal maps (.rodata/.data/.bss) "
                                                "and is never handed out");
        return manifest_mismatch(entry, "the manifest lists map " + quoted(spec.name) +
                                            " but the object has no such map");
    }
    return {};
}

// Writes each parameter's value into the object's .rodata image (little
// endian, the variable's own size) before load: libbpf creates the map from
// this image and freezes it, so neither we nor anyone can change it later.
Result<void> write_parameters(const CatalogEntry& entry, bpf_object* object, const ParameterValues& values)
{
    const Manifest& manifest = *entry.manifest;
    if (values.size() != manifest.parameters.size())
        return fail(ErrorCode::Internal, "load of " + quoted(entry.name) + " got " + std::to_string(values.size()) +
                                             " parameter values for " + std::to_string(manifest.parameters.size()) +
                                             " parameters");
    if (manifest.parameters.empty())
        return {};
    bpf_map* rodata = internal_map_of_section(object, ".rodata");
    std::size_t image_size = 0;
    const void* initial = rodata != nullptr ? bpf_map__initial_value(rodata, &image_size) : nullptr;
    std::vector<unsigned char> image;
    if (initial != nullptr)
        image.assign(static_cast<const unsigned char*>(initial), static_cast<const unsigned char*>(initial) + image_size);

    for (std::size_t i = 0; i < manifest.parameters.size(); ++i) {
        const auto& spec = manifest.parameters[i];
        const std::string path = "$.parameters[" + std::to_string(i) + "].name: ";
        auto value = values.find(spec.name);
        if (value == values.end())
            return fail(ErrorCode::Internal, "no value for parameter " + quoted(spec.name));
        auto variable = find_datasec_variable(object, spec.name, {".rodata"});
        if (!variable || rodata == nullptr || initial == nullptr)
            return fail(ErrorCode::ManifestInvalid, path + quoted(spec.name) +
                                                        " is not a variable in the object's .rodata "
                                                        "(declare it const volatile)");
        const std::size_t size = parameter_size(spec);
        if (variable->size != size)
            return fail(ErrorCode::ManifestInvalid, path + quoted(spec.name) + " is " + std::to_string(variable->size) +
                                                        " bytes in .rodata; this parameter needs " +
                                                        std::to_string(size));
        if (variable->offset + size > image.size())
            return fail(ErrorCode::Internal, "parameter " + quoted(spec.name) + " lies outside .rodata");
        for (std::size_t b = 0; b < size; ++b)
            image[variable->offset + b] = static_cast<unsigned char>(value->second >> (8 * b));
    }
    if (const int err = bpf_map__set_initial_value(rodata, image.data(), image.size()); err != 0)
        return fail(make_system_error("setting the .rodata image of " + quoted(entry.name) + " failed", -err));
    return {};
}

Unexpected kernel_info_error(const std::string& what, int err)
{
    return fail(make_system_error("reading the kernel's info about " + what + " failed", err));
}

Result<LoadedProgram> take_program(bpf_program* program, const policy::ProgramSpec& spec)
{
    const int raw = bpf_program__fd(program);
    if (raw < 0)
        return fail(ErrorCode::Internal, "libbpf loaded the object but program " + quoted(spec.name) + " has no fd");
    UniqueFd fd = UniqueFd::dup_cloexec(raw);
    if (!fd)
        return fail(make_system_error("duplicating the fd of program " + quoted(spec.name) + " failed", errno));

    bpf_prog_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0)
        return kernel_info_error("program " + quoted(spec.name), errno);
    return LoadedProgram{spec.name, spec.type, std::move(fd), info.id, hex_encode(info.tag, sizeof(info.tag)), spec.attach};
}

Result<LoadedMap> take_map(bpf_map* map, const policy::MapSpec& spec)
{
    const int raw = bpf_map__fd(map);
    if (raw < 0)
        return fail(ErrorCode::Internal, "libbpf loaded the object but map " + quoted(spec.name) + " has no fd");
    UniqueFd fd = UniqueFd::dup_cloexec(raw);
    if (!fd)
        return fail(make_system_error("duplicating the fd of map " + quoted(spec.name) + " failed", errno));

    bpf_map_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0)
        return kernel_info_error("map " + quoted(spec.name), errno);
    return LoadedMap{spec.name, spec.client_access, std::move(fd), info.id};
}

}  // namespace

Result<LoadedInstance> load_instance(const CatalogEntry& entry, const ParameterValues& parameters)
{
    if (!entry.manifest)
        return fail(ErrorCode::ManifestInvalid, "catalog entry " + quoted(entry.name) + " has no verified manifest");
    // Checked against the signed pin on these very bytes (policy/catalog.h).
    auto object_bytes = entry.read_object();
    if (!object_bytes)
        return fail(std::move(object_bytes).error());
    return load_instance(entry, *object_bytes, parameters);
}

Result<LoadedInstance> load_instance(const CatalogEntry& entry, std::string_view object_bytes,
                                     const ParameterValues& parameters)
{
    if (!entry.manifest)
        return fail(ErrorCode::ManifestInvalid, "catalog entry " + quoted(entry.name) + " has no verified manifest");

    LibbpfMessages messages;

    bpf_object_open_opts opts;
    std::memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.object_name = entry.name.c_str();

    // From the verified bytes only: reopening the file by path would load
    // whatever is there now, not what the signature covered.
    BpfObjectPtr object(bpf_object__open_mem(object_bytes.data(), object_bytes.size(), &opts));
    if (!object) {
        const int err = errno;
        return fail(Error{ErrorCode::LoadFailed, "libbpf cannot open the object of " + quoted(entry.name), err,
                          messages.text()});
    }

    const ObjectContents contents = list_contents(object.get());
    if (auto checked = check_against_manifest(entry, contents); !checked)
        return fail(std::move(checked).error());

    // Every listed program and map is loaded, whatever the object's own
    // autoload/autocreate defaults say ("?socket" sections and the like).
    std::vector<std::unique_ptr<char[]>> logs;
    logs.reserve(contents.programs.size());
    for (bpf_program* program : contents.programs) {
        bpf_program__set_autoload(program, true);
        auto& log = logs.emplace_back(std::make_unique_for_overwrite<char[]>(kVerifierLogBytes));
        log[0] = '\0';
        // Level 0 with a buffer: libbpf loads without a log and, only if the
        // kernel refuses, loads again at level 1 into this buffer.
        bpf_program__set_log_level(program, 0);
        bpf_program__set_log_buf(program, log.get(), kVerifierLogBytes);
    }
    for (bpf_map* map : contents.user_maps)
        bpf_map__set_autocreate(map, true);
    if (policy::is_ring_attached(entry.manifest->programs.front().type)) {
        for (bpf_program* program : contents.programs)
            if (const int err = bpf_program__set_flags(program, bpf_program__flags(program) | uapi::kBpfFSleepable);
                err != 0)
                return fail(make_system_error("marking the programs of " + quoted(entry.name) + " sleepable failed", -err));
        bpf_map* ops = contents.struct_ops_maps.front();
        if (const int err = bpf_map__set_map_flags(ops, bpf_map__map_flags(ops) | uapi::kBpfFLink); err != 0)
            return fail(make_system_error("setting BPF_F_LINK on the struct_ops map of " + quoted(entry.name) + " failed",
                                          -err));
    }
    if (auto written = write_parameters(entry, object.get(), parameters); !written)
        return fail(std::move(written).error());

    if (const int loaded = bpf_object__load(object.get()); loaded != 0) {
        const int err = -loaded;
        for (std::size_t i = 0; i < contents.programs.size(); ++i) {
            if (logs[i][0] == '\0')
                continue;
            // On a truncated log (kernels >= 6.4 keep the end of it) the
            // kernel answers ENOSPC instead of the verifier's errno.
            return fail(Error{ErrorCode::LoadFailed,
                              "kernel refused program " + quoted(bpf_program__name(contents.programs[i])) + " of " +
                                  quoted(entry.name),
                              err, log_tail(logs[i].get())});
        }
        // Not a program the verifier rejected: BTF, a map, or the load itself.
        return fail(Error{ErrorCode::LoadFailed, "kernel refused the object of " + quoted(entry.name), err,
                          messages.text()});
    }

    LoadedInstance instance;
    for (const auto& spec : entry.manifest->programs) {
        auto program = take_program(find_program(contents, spec.name), spec);
        if (!program)
            return fail(std::move(program).error());
        instance.programs.push_back(std::move(*program));
    }
    for (const auto& spec : entry.manifest->maps) {
        auto map = take_map(find_map(contents.user_maps, spec.name), spec);
        if (!map)
            return fail(std::move(map).error());
        instance.maps.push_back(std::move(*map));
    }
    if (!contents.struct_ops_maps.empty()) {
        auto ops = take_map(contents.struct_ops_maps.front(),
                            policy::MapSpec{bpf_map__name(contents.struct_ops_maps.front()), ClientAccess::None});
        if (!ops)
            return fail(std::move(ops).error());
        instance.struct_ops = std::move(*ops);
    }
    if (!entry.manifest->revocation_guard.empty()) {
        auto guard = RevocationGuard::locate(object.get(), entry.manifest->revocation_guard);
        if (!guard)
            return fail(std::move(guard).error());
        instance.guard = std::move(*guard);
    }
    instance.parameters = parameters;
    // `object` closes libbpf's fds here; the instance holds its own.
    return instance;
}

Result<UniqueFd> client_map_fd(const LoadedMap& map)
{
    switch (map.access) {
    case ClientAccess::None:
        return fail(ErrorCode::Internal, "map " + quoted(map.name) + " has client_access none and is never handed out");
    case ClientAccess::Write:
        return duplicate_for_client(map.fd);
    case ClientAccess::Read:
        break;
    }

    // The id names this map only while something holds it: ours does.
    if (!map.fd)
        return fail(ErrorCode::Internal, "map " + quoted(map.name) + " has no fd to hand out");
    bpf_get_fd_by_id_opts opts;
    std::memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.open_flags = BPF_F_RDONLY;
    // A dup would share the daemon's read-write open file; a new open by id
    // gets a file whose mode the kernel checks on every write (EPERM).
    UniqueFd fd(bpf_map_get_fd_by_id_opts(map.id, &opts));
    if (!fd)
        return fail(make_system_error("opening map " + quoted(map.name) + " read-only by id failed", errno));
    return fd;  // the kernel makes every bpf fd O_CLOEXEC
}

Result<UniqueFd> duplicate_for_client(const UniqueFd& fd)
{
    if (!fd)
        return fail(ErrorCode::Internal, "no fd to duplicate");
    UniqueFd copy = fd.dup();
    if (!copy)
        return fail(make_system_error("duplicating an fd for a client failed", errno));
    return copy;
}

}  // namespace bpfbroker::brokerd
