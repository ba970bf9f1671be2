// An acquire reply's info a{sv} written straight from a Handout, against
// the std::map of sdbus::Variant the daemon built before (kept here as the
// reference): the same keys, each of the same type and value, for a
// client-attached program with maps, a broker-attached one with its attach
// point and parameters, and one with neither. Messages are real sd-bus
// messages, sealed and read back as a reply would be.
#include "brokerd/dbus_handout_info.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

namespace bpfbroker::brokerd {
namespace {

using Fields = std::map<std::string, sdbus::Variant>;

Fields reference(const Handout& h)
{
    Fields info{{"name", sdbus::Variant(h.name)},
                {"version", sdbus::Variant(h.version)},
                {"type", sdbus::Variant(std::string(policy::program_type_name(h.type)))},
                {"instance", sdbus::Variant(std::string(policy::instance_mode_name(h.instance)))},
                {"id", sdbus::Variant(h.prog_id)},
                {"tag", sdbus::Variant(h.tag)}};
    std::map<std::string, std::string> access;
    for (const auto& m : h.maps)
        access.emplace(m.name, std::string(policy::client_access_name(m.access)));
    info.emplace("map_access", sdbus::Variant(access));
    if (!h.attach.empty())
        info.emplace("attach", sdbus::Variant(h.attach));
    if (!h.parameters.empty())
        info.emplace("parameters", sdbus::Variant(h.parameters));
    return info;
}

// Written as the reply writes it, followed by an int that must still read
// back (the a{sv} is closed where it should be); then read as a{sv}.
Fields written(const Handout& h)
{
    const sdbus::Variant v(sdbus::Struct<DbusHandoutInfo, std::int32_t>(DbusHandoutInfo{h}, 42));
    EXPECT_EQ(v.peekValueType(), "(a{sv}i)");
    auto read = v.get<sdbus::Struct<Fields, std::int32_t>>();
    EXPECT_EQ(std::get<1>(read), 42);
    return std::get<0>(read);
}

void expect_same(const Fields& got, const Fields& want)
{
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [key, value] : want) {
        auto it = got.find(key);
        ASSERT_NE(it, got.end()) << key;
        const std::string type = value.peekValueType();
        ASSERT_EQ(it->second.peekValueType(), type) << key;
        if (type == "s")
            EXPECT_EQ(it->second.get<std::string>(), value.get<std::string>()) << key;
        else if (type == "u")
            EXPECT_EQ(it->second.get<std::uint32_t>(), value.get<std::uint32_t>()) << key;
        else if (type == "a{ss}")
            EXPECT_EQ((it->second.get<std::map<std::string, std::string>>()),
                      (value.get<std::map<std::string, std::string>>()))
                << key;
        else if (type == "a{st}")
            EXPECT_EQ((it->second.get<std::map<std::string, std::uint64_t>>()),
                      (value.get<std::map<std::string, std::uint64_t>>()))
                << key;
        else
            ADD_FAILURE() << key << " of unexpected type " << type;
    }
}

Handout basic()
{
    Handout h;
    h.name = "udp_stats";
    h.version = "1.0.0";
    h.type = policy::ProgramType::SocketFilter;
    h.instance = policy::InstanceMode::PerClient;
    h.prog_id = 4294967295u;
    h.tag = "0011223344556677";
    return h;
}

TEST(DbusHandoutInfo, client_attached_with_maps_is_what_the_variant_map_was)
{
    Handout h = basic();
    h.maps.push_back({"stats", policy::ClientAccess::Read, UniqueFd()});
    h.maps.push_back({"config", policy::ClientAccess::Write, UniqueFd()});
    expect_same(written(h), reference(h));
    using Access = std::map<std::string, std::string>;
    EXPECT_EQ(written(h).at("map_access").get<Access>().at("config"), "write");
}

TEST(DbusHandoutInfo, broker_attached_with_attach_and_parameters_is_what_the_variant_map_was)
{
    Handout h = basic();
    h.type = policy::ProgramType::Tracepoint;
    h.instance = policy::InstanceMode::Shared;
    h.attach = "io_uring/io_uring_complete";
    h.parameters = {{"min_payload_len", 8}, {"uid", 18446744073709551615ull}};
    const Fields got = written(h);
    expect_same(got, reference(h));
    EXPECT_EQ(got.at("attach").get<std::string>(), "io_uring/io_uring_complete");
}

TEST(DbusHandoutInfo, without_maps_attach_or_parameters_only_the_fixed_fields)
{
    const Handout h = basic();
    const Fields got = written(h);
    expect_same(got, reference(h));
    EXPECT_FALSE(got.contains("attach"));
    EXPECT_FALSE(got.contains("parameters"));
    using Access = std::map<std::string, std::string>;
    EXPECT_TRUE(got.at("map_access").get<Access>().empty());
}

}  // namespace
}  // namespace bpfbroker::brokerd
