// Strict manifest parsing: every kind of bad input is a named error with a path.
#include "policy/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace bpfbroker;
using namespace bpfbroker::policy;

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

// Parses a mutated good manifest and returns the error message (empty when ok).
std::string error_of(const nlohmann::json& doc)
{
    auto m = parse_manifest(doc.dump());
    if (m)
        return "";
    EXPECT_EQ(m.error().code, ErrorCode::ManifestInvalid);
    return m.error().message;
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
    doc["programs"][0]["attach"] = "x";
    EXPECT_EQ(error_of(doc), "$.programs[0].attach: unknown field \"attach\"");
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
    EXPECT_NE(error_of(doc).find("$.programs: must name exactly one"), std::string::npos);
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
