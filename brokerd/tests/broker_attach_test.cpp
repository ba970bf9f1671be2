// Broker-attached programs against the real kernel: parameters written into
// .rodata before load and frozen there, the revocation guard found and set
// by the daemon, raw tracepoints and tracepoints attached into one CLOEXEC
// link fd whose close detaches. The programs count this process's own
// syscalls (target_tgid = getpid()), so every figure is exact.
#include "brokerd/bpf_link.h"
#include "brokerd/program_loader.h"

#include "handmade_object.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace bpfbroker::brokerd {
namespace {

using policy::CatalogEntry;
using policy::ChoiceType;
using policy::ClientAccess;
using policy::ParameterBinding;
using policy::ParameterChoice;
using policy::ProgramType;
using testing::compile_bpf;
using testing::handmade_entry;
using testing::have_clang;

// Adds `step` to hits[0] on every syscall entry of target_tgid, unless revoked.
constexpr const char* kCounterCommon = R"(
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 target_tgid = 0;
const volatile __u64 step = 0;
const volatile __u8 doubled = 0;
volatile __u32 bpfbroker_revoked SEC(".bss");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline int count(void)
{
	__u32 key = 0;
	__u64 *value;

	if (bpfbroker_revoked || (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	value = bpf_map_lookup_elem(&hits, &key);
	if (value)
		__sync_fetch_and_add(value, doubled ? 2 * step : step);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
)";

constexpr const char* kRawTracepointProgram = R"(
SEC("raw_tracepoint/sys_enter")
int on_sys_enter(void *ctx) { return count(); }
)";

constexpr const char* kTracepointProgram = R"(
SEC("tracepoint/raw_syscalls/sys_enter")
int on_sys_enter(void *ctx) { return count(); }
)";

class BrokerAttach : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!have_clang())
            GTEST_SKIP() << "clang is needed to build the test programs";
    }

    // An entry of the counter with the given program, its parameters and guard.
    void make_entry(const char* program, ProgramType type, const char* attach, CatalogEntry& entry)
    {
        std::string object;
        ASSERT_TRUE(compile_bpf((std::string(kCounterCommon) + program).c_str(), object));
        entry = handmade_entry("counter", object, {"on_sys_enter", type, attach}, {{"hits", ClientAccess::Read}});
        entry.manifest->parameters = {
            {"target_tgid", ParameterBinding::CallerTgid, std::nullopt},
            {"step", std::nullopt, ParameterChoice{ChoiceType::U64, 1, 100, 1}},
            {"doubled", std::nullopt, ParameterChoice{ChoiceType::Bool, 0, 1, 0}},
        };
        entry.manifest->revocation_guard = "bpfbroker_revoked";
    }

    // The values the broker would resolve for this process as the caller.
    static ParameterValues values_for_self(const CatalogEntry& entry, std::uint64_t step, bool doubled)
    {
        auto values = resolve_parameters(*entry.manifest, CallerIdentity{::getpid(), ::getuid(), 1},
                                         {{"step", step}, {"doubled", doubled ? 1 : 0}});
        EXPECT_TRUE(values) << values.error().describe();
        return values ? *values : ParameterValues{};
    }

    static bool is_root() { return ::geteuid() == 0; }
};

std::uint64_t read_hits(const LoadedInstance& instance)
{
    std::uint32_t key = 0;
    std::uint64_t value = 0;
    EXPECT_EQ(bpf_map_lookup_elem(instance.maps.at(0).fd.get(), &key, &value), 0) << std::strerror(errno);
    return value;
}

// Hits counted over `calls` getpid()s; the lookup that reads the result is a
// syscall too, counted once per read.
std::uint64_t hits_over_syscalls(const LoadedInstance& instance, int calls)
{
    const std::uint64_t before = read_hits(instance);
    for (int i = 0; i < calls; ++i)
        (void)::getppid();
    return read_hits(instance) - before;
}

TEST_F(BrokerAttach, a_parameter_the_object_lacks_or_of_another_size_is_manifest_invalid)
{
    CatalogEntry entry;
    ASSERT_NO_FATAL_FAILURE(make_entry(kRawTracepointProgram, ProgramType::RawTracepoint, "sys_enter", entry));
    // Refused before anything reaches the kernel, so no root is needed.
    entry.manifest->parameters.push_back({"missing", std::nullopt, ParameterChoice{ChoiceType::U32, 0, 1, 0}});
    auto values = values_for_self(entry, 1, false);
    values["missing"] = 0;
    auto loaded = load_instance(entry, values);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);
    EXPECT_TRUE(loaded.error().message.starts_with("$.parameters[3].name: \"missing\" is not a variable in the "
                                                   "object's .rodata"))
        << loaded.error().message;

    entry.manifest->parameters.pop_back();
    entry.manifest->parameters[1].choice->type = ChoiceType::U32;  // step is a __u64
    loaded = load_instance(entry, values_for_self(entry, 1, false));
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);
    EXPECT_EQ(loaded.error().message,
              "$.parameters[1].name: \"step\" is 8 bytes in .rodata; this parameter needs 4");

    loaded = load_instance(entry, {});
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::Internal) << "values must cover every parameter";
}

TEST_F(BrokerAttach, parameters_reach_the_program_and_rodata_is_frozen)
{
    if (!is_root())
        GTEST_SKIP() << "loading and attaching tracing programs needs root";
    CatalogEntry entry;
    ASSERT_NO_FATAL_FAILURE(make_entry(kRawTracepointProgram, ProgramType::RawTracepoint, "sys_enter", entry));
    auto instance = load_instance(entry, values_for_self(entry, 5, true));
    ASSERT_TRUE(instance) << instance.error().describe() << "\n" << instance.error().detail;
    auto links = attach_for_caller(*instance);
    ASSERT_TRUE(links) << links.error().describe();
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 11u * 10) << "10 getppid + 1 lookup, 2 * step = 10 each";

    // The .rodata map, found through the program: frozen, so the daemon's
    // own writable view cannot change a parameter after load either.
    bpf_prog_info info;
    std::memset(&info, 0, sizeof(info));
    std::uint32_t map_ids[8] = {};
    info.nr_map_ids = 8;
    info.map_ids = reinterpret_cast<std::uintptr_t>(map_ids);
    __u32 len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(instance->programs[0].fd.get(), &info, &len), 0) << std::strerror(errno);
    bool found = false;
    for (std::uint32_t i = 0; i < info.nr_map_ids && i < 8; ++i) {
        UniqueFd map(bpf_map_get_fd_by_id(map_ids[i]));
        ASSERT_TRUE(map) << std::strerror(errno);
        bpf_map_info map_info;
        std::memset(&map_info, 0, sizeof(map_info));
        __u32 map_len = sizeof(map_info);
        ASSERT_EQ(bpf_obj_get_info_by_fd(map.get(), &map_info, &map_len), 0);
        if (!std::string_view(map_info.name).ends_with(".rodata"))
            continue;
        found = true;
        EXPECT_NE(map_info.map_flags & BPF_F_RDONLY_PROG, 0u);
        std::vector<unsigned char> value(map_info.value_size);
        std::uint32_t key = 0;
        ASSERT_EQ(bpf_map_lookup_elem(map.get(), &key, value.data()), 0) << std::strerror(errno);
        EXPECT_NE(bpf_map_update_elem(map.get(), &key, value.data(), BPF_ANY), 0) << ".rodata is writable";
        EXPECT_EQ(errno, EPERM);
    }
    EXPECT_TRUE(found) << "no .rodata map among the program's maps";
}

TEST_F(BrokerAttach, raw_tracepoint_link_counts_until_revoked_or_closed)
{
    if (!is_root())
        GTEST_SKIP() << "loading and attaching tracing programs needs root";
    CatalogEntry entry;
    ASSERT_NO_FATAL_FAILURE(make_entry(kRawTracepointProgram, ProgramType::RawTracepoint, "sys_enter", entry));
    auto instance = load_instance(entry, values_for_self(entry, 1, false));
    ASSERT_TRUE(instance) << instance.error().describe() << "\n" << instance.error().detail;
    ASSERT_TRUE(instance->guard);
    EXPECT_EQ(instance->programs[0].attach, "sys_enter");
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 0u) << "nothing counts before the broker attaches";

    auto links = attach_for_caller(*instance);
    ASSERT_TRUE(links) << links.error().describe();
    ASSERT_EQ(links->size(), 1u);
    const UniqueFd& link = links->front().fd;
    EXPECT_EQ(links->front().program, "on_sys_enter");
    EXPECT_NE(::fcntl(link.get(), F_GETFD) & FD_CLOEXEC, 0);
    bpf_link_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(link.get(), &info, &len), 0) << std::strerror(errno);
    EXPECT_EQ(info.type, BPF_LINK_TYPE_RAW_TRACEPOINT);
    EXPECT_EQ(info.prog_id, instance->programs[0].id);
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 11u);

    ASSERT_TRUE(instance->guard->set(true));
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 0u) << "the guard must stop the program";
    ASSERT_TRUE(instance->guard->set(false));
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 11u);

    // The caller's fd is the link's only one: closing it detaches.
    links->clear();
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 0u) << "closing the link must detach the program";
}

TEST_F(BrokerAttach, a_guard_the_object_lacks_is_manifest_invalid)
{
    if (!is_root())
        GTEST_SKIP() << "the guard is located in the loaded object, which needs root";
    CatalogEntry entry;
    ASSERT_NO_FATAL_FAILURE(make_entry(kRawTracepointProgram, ProgramType::RawTracepoint, "sys_enter", entry));
    entry.manifest->revocation_guard = "not_there";
    auto loaded = load_instance(entry, values_for_self(entry, 1, false));
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);
    EXPECT_TRUE(loaded.error().message.starts_with("$.revocation.guard: \"not_there\" is not a global variable"))
        << loaded.error().message;
    entry.manifest->revocation_guard = "target_tgid";  // in .rodata: frozen, could never be set
    loaded = load_instance(entry, values_for_self(entry, 1, false));
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);
}

// Mounts tracefs at /sys/kernel/tracing unless it is there, and unmounts
// what it mounted.
class TracefsMount {
public:
    TracefsMount()
    {
        struct statfs fs {};
        if (::statfs(kTracefsRoot, &fs) == 0 && fs.f_type == TRACEFS_MAGIC) {
            ready_ = true;
            return;
        }
        mounted_ = ::mount("tracefs", kTracefsRoot, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0;
        ready_ = mounted_;
    }
    ~TracefsMount()
    {
        if (mounted_)
            ::umount2(kTracefsRoot, MNT_DETACH);
    }
    TracefsMount(const TracefsMount&) = delete;
    TracefsMount& operator=(const TracefsMount&) = delete;
    [[nodiscard]] bool ready() const { return ready_; }

private:
    bool ready_ = false;
    bool mounted_ = false;
};

TEST_F(BrokerAttach, tracepoint_needs_tracefs_and_then_counts_like_a_raw_tracepoint)
{
    if (!is_root())
        GTEST_SKIP() << "loading and attaching tracing programs needs root";
    CatalogEntry entry;
    ASSERT_NO_FATAL_FAILURE(make_entry(kTracepointProgram, ProgramType::Tracepoint, "raw_syscalls/sys_enter", entry));
    auto instance = load_instance(entry, values_for_self(entry, 1, false));
    ASSERT_TRUE(instance) << instance.error().describe() << "\n" << instance.error().detail;

    testing::TempDir not_tracefs;
    auto refused = attach_for_caller(*instance, {.tracefs_root = not_tracefs.path().string()});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::Unsupported);
    EXPECT_NE(refused.error().message.find("tracefs is not mounted at"), std::string::npos)
        << refused.error().message;

    TracefsMount tracefs;
    if (!tracefs.ready())
        GTEST_SKIP() << "cannot mount tracefs at " << kTracefsRoot << ": " << std::strerror(errno);
    auto links = attach_for_caller(*instance);
    ASSERT_TRUE(links) << links.error().describe();
    bpf_link_info info;
    std::memset(&info, 0, sizeof(info));
    __u32 len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(links->front().fd.get(), &info, &len), 0) << std::strerror(errno);
    EXPECT_EQ(info.type, BPF_LINK_TYPE_PERF_EVENT);
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 11u);
    links->clear();
    EXPECT_EQ(hits_over_syscalls(*instance, 10), 0u) << "closing the link must detach the program";

    instance->programs[0].attach = "raw_syscalls/no_such_event";
    auto missing = attach_for_caller(*instance);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ErrorCode::Unsupported);
}

TEST_F(BrokerAttach, a_section_naming_another_attach_point_is_manifest_invalid)
{
    CatalogEntry entry;
    ASSERT_NO_FATAL_FAILURE(make_entry(kRawTracepointProgram, ProgramType::RawTracepoint, "sys_exit", entry));
    auto loaded = load_instance(entry, values_for_self(entry, 1, false));  // refused before the kernel
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::ManifestInvalid);
    EXPECT_NE(loaded.error().message.find("its section \"raw_tracepoint/sys_enter\" names \"sys_enter\""),
              std::string::npos)
        << loaded.error().message;
}

TEST(broker_attach, a_client_attached_program_is_never_attached_by_the_broker)
{
    LoadedInstance instance;
    instance.programs.push_back({"f", ProgramType::SocketFilter, UniqueFd(), 0, "", ""});
    auto links = attach_for_caller(instance);
    ASSERT_FALSE(links);
    EXPECT_EQ(links.error().code, ErrorCode::Internal);
}

}  // namespace
}  // namespace bpfbroker::brokerd
