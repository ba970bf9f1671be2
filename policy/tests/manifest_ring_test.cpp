// Manifests of io_uring_ops programs (Linux 7.1 io_uring_bpf_ops): the
// type, the ring.* binds, and the rules that keep one loaded value per
// caller ring. Each refusal names its JSON path.
#include "manifest_error.h"
#include "policy/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>

using namespace bpfbroker;
using namespace bpfbroker::policy;
using bpfbroker::policy::testing::error_of;

namespace {

nlohmann::json good_ring_program()
{
    return nlohmann::json::parse(R"({
      "schema": 1, "name": "ring_nops", "version": "1.0.0",
      "object": "ring_nops.bpf.o",
      "object_sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "programs": [ { "name": "loop_step", "type": "io_uring_ops" } ],
      "maps": [ { "name": "stats", "client_access": "read" } ],
      "instance": "per-client",
      "requires": [ "io_uring_bpf_ops" ],
      "parameters": [
        { "name": "caller_tgid", "bind": "caller.tgid" },
        { "name": "ring_flags", "bind": "ring.flags" },
        { "name": "sq_entries", "bind": "ring.sq_entries" },
        { "name": "cq_entries", "bind": "ring.cq_entries" },
        { "name": "cq_head_off", "bind": "ring.cq_head_off" },
        { "name": "cq_tail_off", "bind": "ring.cq_tail_off" },
        { "name": "cqes_off", "bind": "ring.cqes_off" },
        { "name": "total", "choice": { "type": "u32", "min": 1, "max": 1000, "default": 100 } }
      ],
      "revocation": { "guard": "bpfbroker_revoked" } })");
}

}  // namespace

TEST(manifest_ring, parses_an_io_uring_ops_program_with_ring_binds)
{
    auto m = parse_manifest(good_ring_program().dump());
    ASSERT_TRUE(m) << m.error().describe();
    EXPECT_EQ(m->programs.at(0).type, ProgramType::IoUringOps);
    EXPECT_TRUE(is_broker_attached(ProgramType::IoUringOps));
    EXPECT_TRUE(is_ring_attached(ProgramType::IoUringOps));
    EXPECT_EQ(m->programs.at(0).attach, "");
    const ParameterBinding expected[] = {ParameterBinding::RingFlags,     ParameterBinding::RingSqEntries,
                                         ParameterBinding::RingCqEntries, ParameterBinding::RingCqHeadOff,
                                         ParameterBinding::RingCqTailOff, ParameterBinding::RingCqesOff};
    for (std::size_t i = 0; i < std::size(expected); ++i) {
        EXPECT_EQ(m->parameters.at(i + 1).bind, expected[i]) << i;
        EXPECT_TRUE(is_ring_binding(expected[i]));
        EXPECT_TRUE(parameter_binding_name(expected[i]).starts_with("ring.")) << parameter_binding_name(expected[i]);
    }
    EXPECT_FALSE(is_ring_binding(ParameterBinding::CallerTgid));
    EXPECT_EQ(m->scope, Scope::Caller);
}

TEST(manifest_ring, refuses_what_would_break_one_value_per_caller_ring)
{
    struct Case {
        const char* what;
        std::function<void(nlohmann::json&)> mutate;
        const char* expected;
    };
    const Case cases[] = {
        {"an attach point", [](auto& d) { d["programs"][0]["attach"] = "io_uring_complete"; },
         "$.programs[0].attach: an io_uring_ops program attaches to the ring the caller names"},
        {"two programs", [](auto& d) { d["programs"].push_back({{"name", "other"}, {"type", "io_uring_ops"}}); },
         "$.programs: an io_uring_ops object implements one callback"},
        {"a shared instance", [](auto& d) { d["instance"] = "shared"; d["maps"][0]["client_access"] = "read"; },
         "$.instance: an io_uring_ops program is loaded per ring"},
        {"system scope", [](auto& d) { d["scope"] = "system"; },
         "$.scope: an io_uring_ops program runs in its caller's own ring only"},
        {"no requires", [](auto& d) { d.erase("requires"); },
         "$.requires: an io_uring_ops program must require \"io_uring_bpf_ops\""},
        {"no guard", [](auto& d) { d.erase("revocation"); },
         "$.revocation: a broker-attached program must declare revocation.guard"},
        {"no caller.tgid", [](auto& d) { d["parameters"].erase(0); },
         "$.parameters: an io_uring_ops program must bind caller.tgid"},
        {"an unknown ring bind", [](auto& d) { d["parameters"][1]["bind"] = "ring.sq_head_off"; },
         "$.parameters[1].bind: must be caller.tgid, caller.uid or caller.cgroup_id (or, for io_uring_ops, ring."},
    };
    for (const auto& c : cases) {
        auto doc = good_ring_program();
        c.mutate(doc);
        EXPECT_TRUE(error_of(doc).starts_with(c.expected)) << c.what << ": " << error_of(doc);
    }
}

TEST(manifest_ring, ring_binds_belong_to_io_uring_ops_programs_only)
{
    auto doc = nlohmann::json::parse(R"({
      "schema": 1, "name": "uring_stats", "version": "1.0.0",
      "object": "uring_stats.bpf.o",
      "object_sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "programs": [ { "name": "on_complete", "type": "raw_tracepoint", "attach": "io_uring_complete" } ],
      "instance": "per-client",
      "parameters": [ { "name": "target_tgid", "bind": "caller.tgid" }, { "name": "flags", "bind": "ring.flags" } ],
      "revocation": { "guard": "bpfbroker_revoked" } })");
    EXPECT_TRUE(error_of(doc).starts_with("$.parameters[1].bind: ring.* binds are for io_uring_ops programs only"))
        << error_of(doc);
    // And the tracepoint allow-list never admits a ring program.
    EXPECT_FALSE(AllowedAttachPoints{}.allows(ProgramType::IoUringOps, "io_uring_complete"));
}
