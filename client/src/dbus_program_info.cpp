// Reading an acquire reply's info a{sv}; see dbus_program_info.h.
#include "dbus_program_info.h"

#include <utility>

namespace bpfbroker {

namespace {

template <typename T>
bool read_variant_as(sdbus::Message& msg, const std::string& contents, const char* signature, T& out)
{
    if (contents != signature)
        return false;
    msg.enterVariant(signature);
    msg >> out;
    msg.exitVariant();
    return true;
}

// Bound parameter values: a{st}, or a{sv} holding t, u or b.
bool read_parameters(sdbus::Message& msg, const std::string& contents, std::map<std::string, std::uint64_t>& out)
{
    if (read_variant_as(msg, contents, "a{st}", out))
        return true;
    std::map<std::string, sdbus::Variant> values;
    if (!read_variant_as(msg, contents, "a{sv}", values))
        return false;
    for (const auto& [name, v] : values) {
        if (v.containsValueOfType<std::uint64_t>())
            out[name] = v.get<std::uint64_t>();
        else if (v.containsValueOfType<std::uint32_t>())
            out[name] = v.get<std::uint32_t>();
        else if (v.containsValueOfType<bool>())
            out[name] = v.get<bool>() ? 1 : 0;
    }
    return true;
}

bool read_info_field(sdbus::Message& msg, const std::string& key, const std::string& contents, ProgramInfo& info)
{
    const std::pair<const char*, std::string ProgramInfo::*> strings[] = {
        {"name", &ProgramInfo::name}, {"version", &ProgramInfo::version}, {"type", &ProgramInfo::type},
        {"instance", &ProgramInfo::instance}, {"tag", &ProgramInfo::tag}, {"attach", &ProgramInfo::attach}};
    for (const auto& [name, field] : strings)
        if (key == name)
            return read_variant_as(msg, contents, "s", info.*field);
    if (key == "id")
        return read_variant_as(msg, contents, "u", info.id);
    if (key == "map_access")
        return read_variant_as(msg, contents, "a{ss}", info.map_access);
    if (key == "parameters")
        return read_parameters(msg, contents, info.parameters);
    return false;
}

}  // namespace

sdbus::Message& operator>>(sdbus::Message& msg, DbusProgramInfo& out)
{
    // The shape of sdbus-c++'s own map reader, with the value read in place.
    if (!msg.enterContainer("{sv}"))
        return msg;
    while (msg.enterDictEntry("sv")) {
        std::string key;
        msg >> key;
        std::string type, contents;
        msg.peekType(type, contents);
        if (!read_info_field(msg, key, contents, out.info)) {
            sdbus::Variant skipped;
            msg >> skipped;
        }
        msg.exitDictEntry();
    }
    msg.clearFlags();
    msg.exitContainer();
    return msg;
}

}  // namespace bpfbroker
