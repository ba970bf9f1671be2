// Broker-attached programs end to end (issue 9): uring_stats acquired by
// uid 65534 over the socket is attached by the daemon to the caller alone.
// The reply holds links and maps, never a program fd; closing the links
// detaches; once the caller exits, its guard is set even while another
// process still holds the links; bound values cannot be set by the request;
// the per-uid limit counts these instances.
#include "support/client_ring.h"
#include "support/approved_for_nobody.h"
#include "support/uring_nops.h"

#include "uring_stats/uring_stats.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace bpfbroker::e2e {
namespace {

constexpr const char* kProgram = "uring_stats";

class BrokerAttachedTest : public ApprovedForNobodyFixture {
protected:
    std::optional<std::string> settings_json() const override
    {
        return R"({"limits":{"max_instances_per_uid":2,"max_requests_per_second":1000}})";
    }
    std::vector<std::string> programs_for_nobody() const override { return {kProgram}; }
};

// The "key:\tvalue" lines of /proc/self/fdinfo/FD.
std::map<std::string, std::string> fdinfo(int fd)
{
    std::map<std::string, std::string> out;
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    for (std::string line; std::getline(in, line);) {
        auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(" \t"));
        out[line.substr(0, colon)] = value;
    }
    return out;
}

using test_support::run_nops;

// ops[IORING_OP_NOP] read through the caller's read-only map fd.
uring_op_counts nop_counts(const Program& p)
{
    const UniqueFd* ops = p.map("ops");
    require(ops != nullptr, "the reply holds no \"ops\" map");
    __u32 key = IORING_OP_NOP;
    uring_op_counts counts{};
    require(bpf_map_lookup_elem(ops->get(), &key, &counts) == 0, "lookup ops[NOP]: " + errno_text(errno));
    return counts;
}

Program acquire_as_child(const std::string& socket, const AcquireOptions& options = {})
{
    auto client = Client::connect_socket(socket, 10s);
    require(bool(client), "connect: " + (client ? "" : client.error().describe()));
    auto p = client->acquire(kProgram, options);
    require(bool(p), "acquire: " + (p ? "" : p.error().describe()));
    return std::move(*p);
}

// Root's look at the revocation guard of the program behind `prog_id`: the
// __u32 "bpfbroker_revoked" in its .bss, found through the map's BTF.
std::optional<std::uint32_t> guard_of(std::uint32_t prog_id)
{
    UniqueFd prog(bpf_prog_get_fd_by_id(prog_id));
    if (!prog)
        return std::nullopt;
    __u32 map_ids[16] = {};
    bpf_prog_info info{};
    info.nr_map_ids = 16;
    info.map_ids = reinterpret_cast<std::uintptr_t>(map_ids);
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(prog.get(), &info, &len) != 0)
        return std::nullopt;
    for (__u32 i = 0; i < std::min(info.nr_map_ids, 16u); ++i) {
        UniqueFd map(bpf_map_get_fd_by_id(map_ids[i]));
        bpf_map_info mi{};
        __u32 mlen = sizeof mi;
        if (!map || bpf_obj_get_info_by_fd(map.get(), &mi, &mlen) != 0 || !std::string_view(mi.name).ends_with(".bss"))
            continue;
        btf* b = btf__load_from_kernel_by_id(mi.btf_id);
        if (!b)
            return std::nullopt;
        std::optional<std::uint32_t> offset;
        const btf_type* sec = btf__type_by_id(b, mi.btf_value_type_id);
        const auto* vars = btf_var_secinfos(sec);
        for (unsigned v = 0; sec && v < btf_vlen(sec); ++v)
            if (std::string_view(btf__name_by_offset(b, btf__type_by_id(b, vars[v].type)->name_off)) ==
                "bpfbroker_revoked")
                offset = vars[v].offset;
        btf__free(b);
        std::vector<unsigned char> value(mi.value_size);
        __u32 key = 0;
        if (!offset || bpf_map_lookup_elem(map.get(), &key, value.data()) != 0)
            return std::nullopt;
        std::uint32_t guard = 0;
        std::memcpy(&guard, value.data() + *offset, sizeof guard);
        return guard;
    }
    return std::nullopt;
}

TEST_F(BrokerAttachedTest, CountsOnlyTheCallersNopsHoldsNoProgramFdAndClosingDetaches)
{
    // Another process floods NOPs the whole time.
    auto flooder = test_support::start_nop_flooder();
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto p = acquire_as_child(socket);
        require(!p.fd().valid(), "a broker-attached reply carried a program fd");
        require(p.links().size() == 3, "expected 3 links, got " + std::to_string(p.links().size()));
        // Every fd received is a link or a map: none is a program.
        for (const auto& [name, fd] : p.links())
            require(fdinfo(fd.get()).count("link_id") == 1, "link " + name + " is " + fd_link(fd.get()));
        for (const char* map : {"ops", "errors", "latency"}) {
            const UniqueFd* fd = p.map(map);
            require(fd && fdinfo(fd->get()).count("map_id") == 1, std::string("map ") + map + " missing");
        }
        require(p.map("rings") == nullptr && p.map("inflight") == nullptr, "a client_access none map was handed out");
        Ring ring(64);
        const auto before = nop_counts(p);
        run_nops(ring.get(), 1000);
        const auto counted = nop_counts(p);
        require(counted.submitted - before.submitted == 1000 && counted.completed - before.completed == 1000,
                "counted " + std::to_string(counted.submitted - before.submitted) + " submitted, " +
                    std::to_string(counted.completed - before.completed) + " completed of 1000 own NOPs");
        // Closing the links detaches: the kernel finishes the unregister
        // after its close returns (a tracepoint waits for an RCU grace
        // period), so the count is taken once that had time to happen.
        { auto closed = p.release_links(); }
        std::this_thread::sleep_for(200ms);
        const auto detached = nop_counts(p);
        run_nops(ring.get(), 500);
        const auto after = nop_counts(p);
        require(after.submitted == detached.submitted && after.completed == detached.completed,
                "NOPs were counted after the links were closed: " + std::to_string(after.submitted - detached.submitted));
        return std::string("ok");
    });
    flooder.tell_child("stop");
    EXPECT_TRUE(flooder.wait().ok());
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "ok");

    bool audited = false;
    for (const auto& rec : audit_records())
        if (rec.count("program") && rec.at("program") == kProgram && rec.count("reason") &&
            rec.at("reason").find(" attach=io_uring_create,io_uring_submit_req,io_uring_complete target_tgid=") !=
                std::string::npos)
            audited = true;
    EXPECT_TRUE(audited) << "no audit record names the attach points and the bound value";
}

TEST_F(BrokerAttachedTest, GuardIsSetWhenTheCallerExitsThoughAnotherProcessHoldsTheLinks)
{
    const std::string socket = socket_path();
    // The caller acquires, leaves the links to a child of its own that lives
    // on, reports the program id, and exits when told.
    auto caller = spawn_as(kNobodyUid, kNobodyGid, [&](ChildChannel& channel) {
        auto p = acquire_as_child(socket);
        const auto& links = p.links();
        require(!links.empty(), "no links");
        const std::string prog_id = fdinfo(links.begin()->second.get())["prog_id"];
        pid_t heir = ::fork();
        if (heir == 0) {
            // Keeps only the inherited links (not the test's channel) until killed.
            for (int fd = 3; fd < 1024; ++fd)
                if (std::none_of(links.begin(), links.end(), [fd](const auto& l) { return l.second.get() == fd; }))
                    ::close(fd);
            ::sleep(30);
            ::_exit(0);
        }
        channel.tell_parent(prog_id + " " + std::to_string(heir));
        channel.wait_parent();
        return std::string("exiting");
    });
    auto line = caller.wait_message();
    ASSERT_TRUE(line) << "the caller reported nothing";
    std::uint32_t prog_id = 0;
    pid_t heir = 0;
    std::istringstream(*line) >> prog_id >> heir;
    ASSERT_GT(heir, 0);
    EXPECT_EQ(guard_of(prog_id), std::optional<std::uint32_t>(0)) << "the guard was set while the caller lived";

    caller.tell_child("exit");
    EXPECT_TRUE(caller.wait().ok());
    std::optional<std::uint32_t> guard;
    for (int i = 0; i < 100 && guard != 1u; ++i) {
        std::this_thread::sleep_for(20ms);
        guard = guard_of(prog_id);
    }
    // The heir still holds the links (the program lives), and counts nothing more.
    EXPECT_EQ(guard, std::optional<std::uint32_t>(1)) << "the guard was not set after the caller exited";
    ::kill(heir, SIGKILL);
}

TEST_F(BrokerAttachedTest, ABoundValueCannotBeSetByTheRequest)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = Client::connect_socket(socket, 10s);
        require(bool(client), "connect");
        auto p = client->acquire(kProgram, AcquireOptions{{{"target_tgid", 1}}});
        require(!p, "a request set the bound target_tgid");
        require(p.error().code == ErrorCode::InvalidParameter, "expected InvalidParameter: " + p.error().describe());
        require(p.error().message.find("target_tgid") != std::string::npos, "the error does not name the parameter");
        return std::string("refused");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "refused");
}

TEST_F(BrokerAttachedTest, ThePerUidLimitCountsBrokerAttachedInstances)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto first = acquire_as_child(socket);
        auto second = acquire_as_child(socket);
        auto client = Client::connect_socket(socket, 10s);
        require(bool(client), "connect");
        auto third = client->acquire(kProgram, {});
        require(!third, "a third instance was handed out past the limit of 2");
        require(third.error().code == ErrorCode::LimitExceeded, "expected LimitExceeded: " + third.error().describe());
        return std::string("limited");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "limited");
}

// One connection acquiring and releasing again and again: each instance's
// registry entry watches a duplicate of the connection's pidfd, forgotten
// once the kernel freed the instance (here when the uid reaches its limit
// of 2). A forgotten watch must leave nothing in the watch's epoll set, or
// the next duplicate, given the same number, is refused ("watching a pidfd
// failed: File exists").
TEST_F(BrokerAttachedTest, OneConnectionAcquiresAndReleasesAgainAndAgain)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = Client::connect_socket(socket, 10s);
        require(bool(client), "connect");
        for (int i = 0; i < 8; ++i) {
            std::optional<Program> held;
            // The kernel frees a released instance a little later: at the
            // limit, an acquire may find the last one still there.
            for (int attempt = 0; attempt < 100 && !held; ++attempt) {
                auto p = client->acquire(kProgram, {});
                if (p) {
                    held = std::move(*p);
                    break;
                }
                require(p.error().code == ErrorCode::LimitExceeded,
                        "acquire " + std::to_string(i + 1) + ": " + p.error().describe());
                std::this_thread::sleep_for(20ms);
            }
            require(held.has_value(), "acquire " + std::to_string(i + 1) + " stayed at the limit for 2 s");
        }
        return std::string("ok");
    });
    ASSERT_TRUE(r.ok()) << r.describe();
}

}  // namespace
}  // namespace bpfbroker::e2e
