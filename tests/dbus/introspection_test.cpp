// The running daemon's introspected org.bpfbroker.Broker1 against
// wire/org.bpfbroker.Broker1.xml: every method there, with its arguments'
// names, types and directions in order. Most methods come from an adaptor
// generated from that file; the acquire methods are registered by hand
// (dbus_service.cpp), and this is what keeps them to it.
#include "support/bus_fixture.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace bpfbroker::dbus_test {
namespace {

// "name type direction" per argument, by method name, of the interface's methods.
using Methods = std::map<std::string, std::vector<std::string>>;

std::string attribute(const std::string& tag, const std::string& name)
{
    std::smatch m;
    if (std::regex_search(tag, m, std::regex("\\b" + name + "=\"([^\"]*)\"")))
        return m[1];
    return "";
}

Methods methods_of(const std::string& xml)
{
    Methods out;
    const auto start = xml.find("<interface name=\"org.bpfbroker.Broker1\"");
    if (start == std::string::npos)
        return out;
    const std::string body = xml.substr(start, xml.find("</interface>", start) - start);
    const std::regex method_re("<method name=\"([^\"]+)\"\\s*>([\\s\\S]*?)</method>");
    const std::regex arg_re("<arg\\b[^>]*>");
    for (std::sregex_iterator m(body.begin(), body.end(), method_re), end; m != end; ++m) {
        auto& args = out[(*m)[1]];
        const std::string inner = (*m)[2];
        for (std::sregex_iterator a(inner.begin(), inner.end(), arg_re); a != end; ++a) {
            const std::string tag = a->str();
            std::string direction = attribute(tag, "direction");
            args.push_back(attribute(tag, "name") + " " + attribute(tag, "type") + " " +
                           (direction.empty() ? "in" : direction));
        }
    }
    return out;
}

using DbusIntrospection = BusFixture;

TEST_F(DbusIntrospection, every_method_is_served_as_the_interface_xml_declares_it)
{
    std::ifstream in(BPFBROKER_TEST_BROKER1_XML);
    ASSERT_TRUE(in) << BPFBROKER_TEST_BROKER1_XML;
    std::stringstream source;
    source << in.rdbuf();
    const Methods declared = methods_of(source.str());
    ASSERT_TRUE(declared.contains("AcquireProgram"));
    ASSERT_TRUE(declared.contains("AcquireProgramWithOptions"));
    EXPECT_EQ(declared.at("AcquireProgram"),
              (std::vector<std::string>{"name s in", "program h out", "maps a{sh} out", "info a{sv} out"}));

    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    std::string xml;
    proxy->callMethod("Introspect").onInterface("org.freedesktop.DBus.Introspectable").storeResultsTo(xml);
    const Methods served = methods_of(xml);
    for (const auto& [name, args] : declared) {
        auto it = served.find(name);
        ASSERT_NE(it, served.end()) << name << " is not served";
        EXPECT_EQ(it->second, args) << name;
    }
    EXPECT_EQ(served.size(), declared.size());
}

}  // namespace
}  // namespace bpfbroker::dbus_test
