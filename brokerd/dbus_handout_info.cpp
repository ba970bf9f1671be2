// Writing an acquire reply's info a{sv}; see dbus_handout_info.h.
#include "brokerd/dbus_handout_info.h"

#include "policy/catalog.h"
#include "policy/manifest.h"

namespace bpfbroker::brokerd {

namespace {

// One {sv} entry: `key`, then `value` inside a variant of `signature`.
template <typename T>
void entry(sdbus::Message& msg, const char* key, const char* signature, const T& value)
{
    msg.openDictEntry("sv");
    msg << key;
    msg.openVariant(signature);
    msg << value;
    msg.closeVariant();
    msg.closeDictEntry();
}

}  // namespace

sdbus::Message& operator<<(sdbus::Message& msg, const DbusHandoutInfo& info)
{
    const Handout& h = info.handout;
    msg.openContainer("{sv}");
    if (!h.attach.empty())
        entry(msg, "attach", "s", h.attach);
    entry(msg, "id", "u", h.prog_id);
    entry(msg, "instance", "s", std::string(policy::instance_mode_name(h.instance)));
    std::map<std::string, std::string> access;
    for (const auto& m : h.maps)
        access.emplace(m.name, std::string(policy::client_access_name(m.access)));
    entry(msg, "map_access", "a{ss}", access);
    entry(msg, "name", "s", h.name);
    if (!h.parameters.empty())
        entry(msg, "parameters", "a{st}", h.parameters);
    entry(msg, "tag", "s", h.tag);
    entry(msg, "type", "s", std::string(policy::program_type_name(h.type)));
    entry(msg, "version", "s", h.version);
    msg.closeContainer();
    return msg;
}

}  // namespace bpfbroker::brokerd
