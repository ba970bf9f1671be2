// program_loader against the real kernel: the shipped programs load from
// memory into CLOEXEC fds, client map fds carry the right rights, objects
// that disagree with their manifest are refused before loading, and a
// program the verifier rejects comes back with the verifier's words.
//
// Loading needs root; the manifest cross-checks only open objects and run
// unprivileged.
#include "brokerd/program_loader.h"

#include "handmade_object.h"
#include "shipped_program.h"

#include "brokerd/libbpf_handles.h"
#include "policy/catalog.h"
#include "policy/manifest.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace bpfbroker::brokerd {
namespace {

namespace fs = std::filesystem;
using policy::CatalogEntry;
using testing::read_file;
using testing::shipped_entry;
using testing::compile_bpf;
using testing::handmade_entry;
using testing::have_clang;
using policy::ClientAccess;
using policy::ProgramType;

const char* const kShippedPrograms[] = {"udp_stats", "drop_small", "src_allow", "reuseport_cpu"};

// What a caller that chooses nothing gets: the manifest's defaults (these
// shipped client-attached programs bind nothing to the caller).
ParameterValues default_values(const CatalogEntry& entry)
{
    auto values = resolve_parameters(*entry.manifest, CallerIdentity{}, {});
    return values ? *values : ParameterValues{};
}

bool is_cloexec(const UniqueFd& fd)
{
    const int flags = ::fcntl(fd.get(), F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

bpf_map_info map_info(int fd)
{
    bpf_map_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0) << std::strerror(errno);
    return info;
}

bpf_prog_info prog_info(int fd)
{
    bpf_prog_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0) << std::strerror(errno);
    return info;
}

const LoadedMap* find_map(const LoadedInstance& instance, const std::string& name)
{
    for (const auto& m : instance.maps)
        if (m.name == name)
            return &m;
    return nullptr;
}

class RootOnly : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0)
            GTEST_SKIP() << "loading BPF programs needs root";
    }
};

class ProgramLoader : public RootOnly {};

TEST_F(ProgramLoader, loads_every_shipped_program_into_cloexec_fds)
{
    for (const char* name : kShippedPrograms) {
        SCOPED_TRACE(name);
        CatalogEntry entry;
        ASSERT_TRUE(shipped_entry(name, entry));
        auto instance = load_instance(entry, default_values(entry));
        ASSERT_TRUE(instance) << instance.error().describe() << "\n" << instance.error().detail;

        ASSERT_EQ(instance->programs.size(), entry.manifest->programs.size());
        for (std::size_t i = 0; i < instance->programs.size(); ++i) {
            const LoadedProgram& program = instance->programs[i];
            EXPECT_EQ(program.name, entry.manifest->programs[i].name);
            EXPECT_EQ(program.type, entry.manifest->programs[i].type);
            ASSERT_TRUE(program.fd.valid());
            EXPECT_TRUE(is_cloexec(program.fd));
            EXPECT_NE(program.id, 0u);
            ASSERT_EQ(program.tag.size(), 16u);
            EXPECT_EQ(program.tag.find_first_not_of("0123456789abcdef"), std::string::npos) << program.tag;
            EXPECT_NE(program.tag, std::string(16, '0'));

            const bpf_prog_info info = prog_info(program.fd.get());
            EXPECT_EQ(info.id, program.id);
            EXPECT_EQ(info.type, program.type == ProgramType::SocketFilter ? BPF_PROG_TYPE_SOCKET_FILTER
                                                                          : BPF_PROG_TYPE_SK_REUSEPORT);
        }

        ASSERT_EQ(instance->maps.size(), entry.manifest->maps.size());
        for (std::size_t i = 0; i < instance->maps.size(); ++i) {
            const LoadedMap& map = instance->maps[i];
            EXPECT_EQ(map.name, entry.manifest->maps[i].name);
            EXPECT_EQ(map.access, entry.manifest->maps[i].client_access);
            ASSERT_TRUE(map.fd.valid());
            EXPECT_TRUE(is_cloexec(map.fd));
            EXPECT_NE(map.id, 0u);
            EXPECT_EQ(map_info(map.fd.get()).id, map.id);
        }
    }
}

TEST_F(ProgramLoader, each_load_is_a_fresh_instance)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    auto first = load_instance(entry);
    auto second = load_instance(entry);
    ASSERT_TRUE(first && second);
    EXPECT_NE(first->programs.at(0).id, second->programs.at(0).id);
    EXPECT_NE(first->maps.at(0).id, second->maps.at(0).id);
    EXPECT_EQ(first->programs.at(0).tag, second->programs.at(0).tag) << "same instructions, same tag";
}

TEST_F(ProgramLoader, read_map_client_fd_reads_but_refuses_writes)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    auto instance = load_instance(entry);
    ASSERT_TRUE(instance) << instance.error().describe();
    const LoadedMap* stats = find_map(*instance, "stats");
    ASSERT_NE(stats, nullptr);
    ASSERT_EQ(stats->access, ClientAccess::Read);

    auto client = client_map_fd(*stats);
    ASSERT_TRUE(client) << client.error().describe();
    EXPECT_TRUE(is_cloexec(*client));
    const bpf_map_info info = map_info(client->get());
    EXPECT_EQ(info.id, stats->id) << "the same map, opened again";

    std::uint32_t key = 0;
    std::vector<unsigned char> value(info.value_size, 0);
    EXPECT_EQ(bpf_map_lookup_elem(client->get(), &key, value.data()), 0) << std::strerror(errno);

    std::vector<unsigned char> update(info.value_size, 0x5a);
    errno = 0;
    EXPECT_NE(bpf_map_update_elem(client->get(), &key, update.data(), BPF_ANY), 0);
    EXPECT_EQ(errno, EPERM);
    errno = 0;
    EXPECT_NE(bpf_map_freeze(client->get()), 0) << "a read-only fd must not freeze the map either";
    EXPECT_EQ(errno, EPERM);

    // The daemon's own fd is untouched by the client's read-only one.
    EXPECT_EQ(bpf_map_update_elem(stats->fd.get(), &key, update.data(), BPF_ANY), 0) << std::strerror(errno);
    EXPECT_EQ(bpf_map_lookup_elem(client->get(), &key, value.data()), 0);
    EXPECT_EQ(value, update) << "the client reads what the program (here: the daemon) wrote";
}

TEST_F(ProgramLoader, write_map_client_fd_accepts_writes)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("src_allow", entry));
    auto instance = load_instance(entry);
    ASSERT_TRUE(instance) << instance.error().describe();
    const LoadedMap* allowed = find_map(*instance, "allowed_v4");
    ASSERT_NE(allowed, nullptr);
    ASSERT_EQ(allowed->access, ClientAccess::Write);

    auto client = client_map_fd(*allowed);
    ASSERT_TRUE(client) << client.error().describe();
    EXPECT_TRUE(is_cloexec(*client));
    const bpf_map_info info = map_info(client->get());
    EXPECT_EQ(info.id, allowed->id);

    // An all-zero LPM key is the /0 prefix: valid for any address family.
    std::vector<unsigned char> key(info.key_size, 0);
    std::vector<unsigned char> value(info.value_size, 1);
    EXPECT_EQ(bpf_map_update_elem(client->get(), key.data(), value.data(), BPF_ANY), 0) << std::strerror(errno);
    std::vector<unsigned char> back(info.value_size, 0);
    EXPECT_EQ(bpf_map_lookup_elem(allowed->fd.get(), key.data(), back.data()), 0) << std::strerror(errno);
    EXPECT_EQ(back, value);
}

TEST(program_loader, never_hands_out_a_map_without_client_access)
{
    LoadedMap hidden{"hidden", ClientAccess::None, UniqueFd(), 1};
    auto client = client_map_fd(hidden);
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code, ErrorCode::Internal);
}

TEST(program_loader, duplicate_for_client_is_cloexec_and_independent)
{
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    UniqueFd read_end(pipe_fds[0]);
    UniqueFd write_end(pipe_fds[1]);
    auto copy = duplicate_for_client(read_end);
    ASSERT_TRUE(copy) << copy.error().describe();
    EXPECT_NE(copy->get(), read_end.get());
    EXPECT_TRUE(is_cloexec(*copy));

    auto none = duplicate_for_client(UniqueFd());
    EXPECT_FALSE(none);
}

// ---- manifest cross-checks (open only: no privilege needed) ------------------

void expect_manifest_invalid(const CatalogEntry& entry, const std::string& needle)
{
    auto instance = load_instance(entry);
    ASSERT_FALSE(instance) << "loaded an object that does not match its manifest";
    EXPECT_EQ(instance.error().code, ErrorCode::ManifestInvalid) << instance.error().describe();
    EXPECT_NE(instance.error().message.find(needle), std::string::npos)
        << "\"" << instance.error().message << "\" should mention " << needle;
}

TEST(program_loader, refuses_a_program_the_manifest_does_not_list)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    entry.manifest->programs.clear();
    expect_manifest_invalid(entry, "program \"count\" (section \"socket\") is not listed");
}

TEST(program_loader, refuses_a_listed_program_the_object_lacks)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    entry.manifest->programs.push_back({"no_such_function", ProgramType::SocketFilter});
    expect_manifest_invalid(entry, "lists program \"no_such_function\"");
}

TEST(program_loader, refuses_a_program_type_other_than_the_sections)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    entry.manifest->programs.at(0).type = ProgramType::SkReuseport;
    expect_manifest_invalid(entry, "is sk_reuseport in the manifest but its section \"socket\" makes it socket_filter");

    ASSERT_TRUE(shipped_entry("reuseport_cpu", entry));
    entry.manifest->programs.at(0).type = ProgramType::SocketFilter;
    expect_manifest_invalid(entry, "makes it sk_reuseport");
}

TEST(program_loader, refuses_a_map_the_manifest_does_not_list)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("src_allow", entry));
    std::erase_if(entry.manifest->maps, [](const policy::MapSpec& m) { return m.name == "allowed_v6"; });
    expect_manifest_invalid(entry, "map \"allowed_v6\" is not listed");
}

TEST(program_loader, refuses_a_listed_map_the_object_lacks)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("drop_small", entry));
    entry.manifest->maps.push_back({"counters", ClientAccess::Read});
    expect_manifest_invalid(entry, "lists map \"counters\" but the object has no such map");
}

TEST(program_loader, refuses_an_entry_without_manifest_or_object)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    CatalogEntry no_manifest = entry;
    no_manifest.manifest.reset();
    auto loaded = load_instance(no_manifest);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);

    CatalogEntry no_object = entry;
    no_object.object_bytes.clear();
    loaded = load_instance(no_object);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);
}

TEST(program_loader, reports_an_object_libbpf_cannot_parse)
{
    CatalogEntry entry;
    ASSERT_TRUE(shipped_entry("udp_stats", entry));
    entry.object_bytes = std::string(4096, '\x7f');
    auto loaded = load_instance(entry);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::LoadFailed);
    EXPECT_NE(loaded.error().message.find("cannot open"), std::string::npos) << loaded.error().describe();
}

// ---- objects compiled here: a verifier rejection, internal maps ---------------

// Reads past the end of the socket context: every verifier refuses it.
constexpr const char* kVerifierRejectSource = R"(
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int reject_me(struct __sk_buff *skb)
{
	return *(volatile int *)((char *)skb + 4000);
}

char LICENSE[] SEC("license") = "GPL";
)";

// A user map plus a global variable, which libbpf turns into an internal
// .bss map: internal maps need no manifest entry and are never handed out.
constexpr const char* kInternalMapSource = R"(
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

__u64 seen_total = 0;

SEC("socket")
int count_hits(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&hits, &key);

	if (value)
		__sync_fetch_and_add(value, 1);
	seen_total++;
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
)";

TEST_F(ProgramLoader, verifier_rejection_carries_the_verifier_log)
{
    if (!have_clang())
        GTEST_SKIP() << "clang is needed to build the rejected program";
    std::string object;
    ASSERT_TRUE(compile_bpf(kVerifierRejectSource, object));
    CatalogEntry entry = handmade_entry("verifier_reject", object, {"reject_me", ProgramType::SocketFilter}, {});

    auto loaded = load_instance(entry);
    ASSERT_FALSE(loaded) << "the verifier accepted an out-of-bounds context read";
    const Error& err = loaded.error();
    EXPECT_EQ(err.code, ErrorCode::LoadFailed);
    EXPECT_EQ(err.sys_errno, EACCES) << err.describe();
    EXPECT_NE(err.message.find("kernel refused program \"reject_me\""), std::string::npos) << err.message;
    EXPECT_NE(err.detail.find("invalid bpf_context access"), std::string::npos) << err.detail;
    EXPECT_LE(err.detail.size(), kVerifierLogDetailBytes + 64);
}

TEST_F(ProgramLoader, internal_maps_need_no_listing_and_are_not_handed_out)
{
    if (!have_clang())
        GTEST_SKIP() << "clang is needed to build the test program";
    std::string object;
    ASSERT_TRUE(compile_bpf(kInternalMapSource, object));
    CatalogEntry entry = handmade_entry("internal", object, {"count_hits", ProgramType::SocketFilter},
                                        {{"hits", ClientAccess::Read}});

    auto loaded = load_instance(entry);
    ASSERT_TRUE(loaded) << loaded.error().describe() << "\n" << loaded.error().detail;
    ASSERT_EQ(loaded->maps.size(), 1u);
    EXPECT_EQ(loaded->maps[0].name, "hits");

    // Naming the internal map in the manifest is refused (the name libbpf
    // gives it depends on the object name, so ask libbpf).
    bpf_object_open_opts opts;
    std::memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.object_name = entry.name.c_str();
    LibbpfMessages quiet;
    BpfObjectPtr opened(bpf_object__open_mem(entry.object_bytes.data(), entry.object_bytes.size(), &opts));
    ASSERT_TRUE(opened);
    std::string internal_name;
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, opened.get()) {
        if (bpf_map__is_internal(map))
            internal_name = bpf_map__name(map);
    }
    ASSERT_FALSE(internal_name.empty()) << "expected a .bss map";
    entry.manifest->maps.push_back({internal_name, ClientAccess::Read});
    expect_manifest_invalid(entry, "one of libbpf's internal maps");
}

}  // namespace
}  // namespace bpfbroker::brokerd

namespace bpfbroker::brokerd {
namespace {

TEST_F(ProgramLoader, keeps_the_guard_of_every_shipped_program)
{
    for (const char* name : kShippedPrograms) {
        SCOPED_TRACE(name);
        CatalogEntry entry;
        ASSERT_TRUE(shipped_entry(name, entry));
        auto instance = load_instance(entry, default_values(entry));
        ASSERT_TRUE(instance) << instance.error().describe();
        ASSERT_TRUE(instance->guard) << "every shipped program declares a guard";
        EXPECT_EQ(instance->guard->name(), "bpfbroker_revoked");
        auto before = instance->guard->is_set();
        ASSERT_TRUE(before);
        EXPECT_FALSE(*before) << "a fresh instance is not revoked";
        ASSERT_TRUE(instance->guard->set(true));
        auto after = instance->guard->is_set();
        ASSERT_TRUE(after);
        EXPECT_TRUE(*after);
        // The guard's map is none of the maps a client can be given.
        for (const auto& map : instance->maps)
            EXPECT_NE(map.id, instance->guard->map_id());
    }
}

}  // namespace
}  // namespace bpfbroker::brokerd
