// Strict manifest parsing: every kind of bad input is a named error with a path.
#include "manifest_error.h"
#include "policy/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace bpfbroker;
using namespace bpfbroker::policy;
using bpfbroker::policy::testing::error_of;

namespace {

nlohmann::json good()
{
    return nlohmann::json::parse(R"({
      "schema": 1, "name": "udp_stats", "version": "1.0.0",
      "description": "Counts datagrams",
      "object": "udp_stats.bpf.o",
      "object_sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "programs": [ { "name": "count", "type": "socket_filter" } ],
      "maps": [ { "name": "stats", "client_access": "read" } ],
      "instance": "per-client",
      "requires": [ "uring_cmd_setsockopt" ] })");
}

}  // namespace

TEST(manifest, parses_a_complete_manifest)
{
    auto m = parse_manifest(good().dump());
    ASSERT_TRUE(m) << m.error().describe();
    EXPECT_EQ(m->name, "udp_stats");
    EXPECT_EQ(m->programs.at(0).type, ProgramType::SocketFilter);
    EXPECT_EQ(m->maps.at(0).client_access, ClientAccess::Read);
    EXPECT_EQ(m->instance, InstanceMode::PerClient);
    EXPECT_EQ(m->requires_features.at(0), "uring_cmd_setsockopt");
}

TEST(manifest, refuses_unknown_fields_with_their_path)
{
    auto doc = good();
    doc["extra"] = 1;
    EXPECT_EQ(error_of(doc), "$.extra: unknown field \"extra\"");
    doc = good();
    doc["programs"][0]["pin"] = "x";
    EXPECT_EQ(error_of(doc), "$.programs[0].pin: unknown field \"pin\"");
}

TEST(manifest, refuses_wrong_types_and_missing_fields)
{
    auto doc = good();
    doc["schema"] = "1";
    EXPECT_NE(error_of(doc).find("$.schema: expected an integer"), std::string::npos);
    doc = good();
    doc["schema"] = 2;
    EXPECT_NE(error_of(doc).find("$.schema"), std::string::npos);
    doc = good();
    doc.erase("object_sha256");
    EXPECT_EQ(error_of(doc), "$.object_sha256: required field is missing");
    doc = good();
    doc["programs"] = nlohmann::json::object();
    EXPECT_NE(error_of(doc).find("$.programs: expected an array"), std::string::npos);
    doc = good();
    doc["programs"] = nlohmann::json::array();
    EXPECT_NE(error_of(doc).find("$.programs: must name at least one"), std::string::npos);
}

TEST(manifest, refuses_bad_names_and_object_paths)
{
    for (const char* name : {"", "Upper", "a/b", "../x", "-lead", "with space",
                             "a234567890123456789012345678901234567890123456789012345678901234x"}) {
        auto doc = good();
        doc["name"] = name;
        EXPECT_NE(error_of(doc).find("$.name"), std::string::npos) << name;
    }
    for (const char* object : {"../x.o", "dir/x.o", "/abs.o", ".hidden", "..", ""}) {
        auto doc = good();
        doc["object"] = object;
        EXPECT_NE(error_of(doc).find("$.object:"), std::string::npos) << object;
    }
    auto doc = good();
    doc["object_sha256"] = std::string(64, 'A');
    EXPECT_NE(error_of(doc).find("$.object_sha256"), std::string::npos);
    doc = good();
    doc["maps"][0]["name"] = "a_name_longer_than_15";
    EXPECT_NE(error_of(doc).find("$.maps[0].name"), std::string::npos);
}

TEST(manifest, refuses_unknown_program_types_access_and_features)
{
    auto doc = good();
    doc["programs"][0]["type"] = "kprobe";
    EXPECT_NE(error_of(doc).find("$.programs[0].type: unknown program type \"kprobe\""), std::string::npos);
    doc = good();
    doc["maps"][0]["client_access"] = "admin";
    EXPECT_NE(error_of(doc).find("$.maps[0].client_access"), std::string::npos);
    doc = good();
    doc["requires"] = {"time_travel"};
    EXPECT_NE(error_of(doc).find("$.requires[0]: unknown feature"), std::string::npos);
    doc = good();
    doc["instance"] = "global";
    EXPECT_NE(error_of(doc).find("$.instance"), std::string::npos);
}

TEST(manifest, refuses_a_shared_instance_with_a_writable_map)
{
    auto doc = good();
    doc["instance"] = "shared";
    doc["maps"][0]["client_access"] = "write";
    EXPECT_EQ(error_of(doc), "$.maps[0].client_access: a shared instance cannot grant write access to a map");
    doc["maps"][0]["client_access"] = "read";
    EXPECT_EQ(error_of(doc), "");
}

TEST(manifest, refuses_duplicates_oversize_and_malformed_json)
{
    auto text = good().dump();
    auto dup = text.substr(0, text.size() - 1) + R"(,"name":"other"})";
    auto m = parse_manifest(dup);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message.find("duplicate key \"name\""), std::string::npos);

    auto doc = good();
    doc["maps"].push_back(doc["maps"][0]);
    EXPECT_NE(error_of(doc).find("listed twice"), std::string::npos);

    std::string big = good().dump();
    big.insert(1, std::string(kMaxManifestBytes, ' '));
    m = parse_manifest(big);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message.find("more than the limit"), std::string::npos);

    for (const char* bad : {"", "{", "[]", "null", "{\"schema\":1,}", "\xff\xfe", "{\"a\":\"\xc3\x28\"}"}) {
        m = parse_manifest(bad);
        ASSERT_FALSE(m) << bad;
        EXPECT_EQ(m.error().code, ErrorCode::ManifestInvalid);
    }

    std::string deep(100, '[');
    deep += std::string(100, ']');
    m = parse_manifest(deep);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message.find("nested deeper"), std::string::npos);
}

namespace {

// A broker-attached manifest that parses: raw tracepoint, bound to the caller, guarded.
nlohmann::json good_broker_attached()
{
    return nlohmann::json::parse(R"({
      "schema": 1, "name": "uring_stats", "version": "1.0.0",
      "object": "uring_stats.bpf.o",
      "object_sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "programs": [ { "name": "on_complete", "type": "raw_tracepoint", "attach": "io_uring_complete" } ],
      "maps": [ { "name": "counts", "client_access": "read" } ],
      "instance": "per-client",
      "parameters": [
        { "name": "target_tgid", "bind": "caller.tgid" },
        { "name": "min_len", "choice": { "type": "u32", "min": 0, "max": 1500, "default": 8 } },
        { "name": "verbose", "choice": { "type": "bool", "default": true } },
        { "name": "big", "choice": { "type": "u64", "min": 0, "max": 18446744073709551615, "default": 18446744073709551615 } }
      ],
      "revocation": { "guard": "bpfbroker_revoked" } })");
}

}  // namespace

TEST(manifest, parses_broker_attached_programs_with_parameters_and_a_guard)
{
    auto m = parse_manifest(good_broker_attached().dump());
    ASSERT_TRUE(m) << m.error().describe();
    EXPECT_EQ(m->programs.at(0).type, ProgramType::RawTracepoint);
    EXPECT_EQ(m->programs.at(0).attach, "io_uring_complete");
    EXPECT_EQ(m->scope, Scope::Caller);
    EXPECT_EQ(m->revocation_guard, "bpfbroker_revoked");
    ASSERT_EQ(m->parameters.size(), 4u);
    EXPECT_EQ(m->parameters[0].bind, ParameterBinding::CallerTgid);
    EXPECT_FALSE(m->parameters[0].choice);
    ASSERT_TRUE(m->parameters[1].choice);
    EXPECT_EQ(m->parameters[1].choice->type, ChoiceType::U32);
    EXPECT_EQ(m->parameters[1].choice->max, 1500u);
    EXPECT_EQ(m->parameters[1].choice->default_value, 8u);
    EXPECT_EQ(m->parameters[2].choice->type, ChoiceType::Bool);
    EXPECT_EQ(m->parameters[2].choice->default_value, 1u);
    EXPECT_EQ(m->parameters[3].choice->default_value, UINT64_MAX);

    auto doc = good_broker_attached();
    doc["programs"][0] = {{"name", "on_complete"}, {"type", "tracepoint"}, {"attach", "io_uring/io_uring_complete"}};
    m = parse_manifest(doc.dump());
    ASSERT_TRUE(m) << m.error().describe();
    EXPECT_EQ(m->programs.at(0).type, ProgramType::Tracepoint);

    // Unscoped is fine when the manifest says so (decide() keeps it for root).
    doc["parameters"].erase(0);
    doc["scope"] = "system";
    m = parse_manifest(doc.dump());
    ASSERT_TRUE(m) << m.error().describe();
    EXPECT_EQ(m->scope, Scope::System);

    // A client-attached manifest may carry a guard and choices too.
    doc = good();
    doc["revocation"] = {{"guard", "bpfbroker_revoked"}};
    doc["parameters"] = nlohmann::json::parse(R"([{ "name": "min_len", "choice": { "type": "u32", "min": 0, "max": 9, "default": 9 } }])");
    EXPECT_EQ(error_of(doc), "");
}

TEST(manifest, refuses_bad_broker_attach_rules_with_their_path)
{
    struct Row {
        const char* what;
        void (*mutate)(nlohmann::json&);
        const char* expected;  // a prefix of the message: path and start of the reason
    };
    const Row rows[] = {
        {"a tracepoint outside io_uring/*",
         [](nlohmann::json& d) { d["programs"][0] = {{"name", "f"}, {"type", "tracepoint"}, {"attach", "sched/sched_switch"}}; },
         "$.programs[0].attach: attach point \"sched/sched_switch\" is not allowed"},
        {"an unknown raw tracepoint", [](nlohmann::json& d) { d["programs"][0]["attach"] = "sys_enter"; },
         "$.programs[0].attach: attach point \"sys_enter\" is not allowed"},
        {"a tracepoint without category", [](nlohmann::json& d) { d["programs"][0] = {{"name", "f"}, {"type", "tracepoint"}, {"attach", "io_uring_complete"}}; },
         "$.programs[0].attach: must be CATEGORY/NAME"},
        {"a path in an attach point", [](nlohmann::json& d) { d["programs"][0]["attach"] = "io_uring_../x"; },
         "$.programs[0].attach: must be a raw tracepoint NAME"},
        {"no attach point", [](nlohmann::json& d) { d["programs"][0].erase("attach"); },
         "$.programs[0].attach: required field is missing"},
        {"an attach point on a client-attached type", [](nlohmann::json& d) { d["programs"][0]["type"] = "socket_filter"; },
         "$.programs[0].attach: only broker-attached types"},
        {"unscoped without scope system", [](nlohmann::json& d) { d["parameters"].erase(0); },
         "$.parameters: a broker-attached program must bind a parameter to the caller"},
        {"no guard", [](nlohmann::json& d) { d.erase("revocation"); },
         "$.revocation: a broker-attached program must declare revocation.guard"},
        {"a default above max", [](nlohmann::json& d) { d["parameters"][1]["choice"]["default"] = 1501; },
         "$.parameters[1].choice.default: lies outside [0, 1500]"},
        {"min above max", [](nlohmann::json& d) { d["parameters"][1]["choice"]["min"] = 2000; },
         "$.parameters[1].choice.max: is below min"},
        {"a u32 bound past 2^32-1", [](nlohmann::json& d) { d["parameters"][1]["choice"]["max"] = 4294967296ull; },
         "$.parameters[1].choice.max: must be an integer between 0 and 4294967295"},
        {"a negative bound", [](nlohmann::json& d) { d["parameters"][1]["choice"]["min"] = -1; },
         "$.parameters[1].choice.min: must be an integer between 0"},
        {"an unknown choice type", [](nlohmann::json& d) { d["parameters"][1]["choice"]["type"] = "i32"; },
         "$.parameters[1].choice.type: must be u32, u64 or bool"},
        {"bounds on a bool", [](nlohmann::json& d) { d["parameters"][2]["choice"]["min"] = 0; },
         "$.parameters[2].choice.min: unknown field"},
        {"duplicate parameter names", [](nlohmann::json& d) { d["parameters"][1]["name"] = "target_tgid"; },
         "$.parameters[1].name: parameter \"target_tgid\" listed twice"},
        {"an unknown binding", [](nlohmann::json& d) { d["parameters"][0]["bind"] = "request.pid"; },
         "$.parameters[0].bind: must be caller.tgid, caller.uid or caller.cgroup_id"},
        {"both bind and choice", [](nlohmann::json& d) { d["parameters"][0]["choice"] = d["parameters"][1]["choice"]; },
         "$.parameters[0].name: a parameter has exactly one of bind and choice"},
        {"a guard that is also a parameter", [](nlohmann::json& d) { d["revocation"]["guard"] = "min_len"; },
         "$.revocation.guard: \"min_len\" is also a parameter"},
        {"an unknown scope", [](nlohmann::json& d) { d["scope"] = "global"; },
         "$.scope: must be caller or system"},
        {"an unknown field in revocation", [](nlohmann::json& d) { d["revocation"]["detach"] = true; },
         "$.revocation.detach: unknown field"},
    };
    for (const Row& row : rows) {
        SCOPED_TRACE(row.what);
        auto doc = good_broker_attached();
        row.mutate(doc);
        EXPECT_TRUE(error_of(doc).starts_with(row.expected)) << error_of(doc);
    }

    auto several = good_broker_attached();
    several["programs"].push_back({{"name", "on_submit"}, {"type", "raw_tracepoint"}, {"attach", "io_uring_submit_req"}});
    EXPECT_EQ(error_of(several), "");
    several["programs"].push_back(several["programs"][1]);
    EXPECT_TRUE(error_of(several).starts_with("$.programs[2].name: program \"on_submit\" listed twice")) << error_of(several);
    several["programs"][2] = {{"name", "count"}, {"type", "socket_filter"}};
    EXPECT_TRUE(error_of(several).starts_with("$.programs[2].type: a client-attached program must be the manifest's only"))
        << error_of(several);

    // One shared instance serves every caller: a value bound to one caller
    // cannot be part of it, for broker- and client-attached programs alike.
    auto shared = good_broker_attached();
    shared["instance"] = "shared";
    shared["maps"][0]["client_access"] = "read";
    EXPECT_TRUE(error_of(shared).starts_with("$.parameters[0].bind: a shared instance serves every caller"))
        << error_of(shared);
    shared["parameters"][0]["bind"] = "caller.uid";
    EXPECT_TRUE(error_of(shared).starts_with("$.parameters[0].bind: a shared instance serves every caller"))
        << error_of(shared);
    shared["parameters"].erase(0);
    shared["scope"] = "system";
    EXPECT_EQ(error_of(shared), "") << "a shared system-scope program with choices only is fine";
    auto shared_filter = good();
    shared_filter["instance"] = "shared";
    shared_filter["parameters"] = nlohmann::json::parse(R"([{ "name": "owner", "bind": "caller.uid" }])");
    EXPECT_TRUE(error_of(shared_filter).starts_with("$.parameters[0].bind: a shared instance serves every caller"))
        << error_of(shared_filter);

    auto client = good();
    client["scope"] = "system";
    EXPECT_TRUE(error_of(client).starts_with("$.scope: only broker-attached programs have a scope")) << error_of(client);
}

TEST(manifest, settings_widen_the_allowed_attach_points)
{
    auto doc = good_broker_attached();
    doc["programs"][0]["attach"] = "sched_switch";
    EXPECT_FALSE(parse_manifest(doc.dump()));
    AllowedAttachPoints wider;
    wider.raw_tracepoint.push_back("sched_*");
    EXPECT_TRUE(parse_manifest(doc.dump(), wider));
    doc["programs"][0]["attach"] = "sys_enter";
    EXPECT_FALSE(parse_manifest(doc.dump(), wider));
    // An entry for one type says nothing about the other.
    doc["programs"][0] = {{"name", "f"}, {"type", "tracepoint"}, {"attach", "sched/sched_switch"}};
    EXPECT_FALSE(parse_manifest(doc.dump(), wider));
    wider.tracepoint.push_back("sched/sched_switch");
    EXPECT_TRUE(parse_manifest(doc.dump(), wider));
}
