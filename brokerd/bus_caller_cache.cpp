// D-Bus callers' credentials, once per connection; see bus_caller_cache.h.
#include "brokerd/bus_caller_cache.h"

#include "brokerd/log.h"

#include "brokerd/limits.h"
#include "brokerd/peer_identity.h"

#include <sdbus-c++/Error.h>
#include <sdbus-c++/Message.h>
#include <sdbus-c++/Types.h>

#include <cstdint>
#include <map>
#include <vector>

namespace bpfbroker::brokerd {

namespace {

constexpr const char* kDriver = "org.freedesktop.DBus";
constexpr const char* kDriverPath = "/org/freedesktop/DBus";
// Only names that lose their owner without a new one: a closed connection's
// unique name is one of those.
constexpr const char* kNameLostMatch =
    "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
    "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg2=''";

template <typename T>
bool read(const std::map<std::string, sdbus::Variant>& creds, const char* key, T& out)
{
    auto it = creds.find(key);
    if (it == creds.end() || !it->second.containsValueOfType<T>())
        return false;
    out = it->second.get<T>();
    return true;
}

}  // namespace

BusCallerCache::BusCallerCache(sdbus::IConnection& connection)
    : driver_(sdbus::createProxy(connection, kDriver, kDriverPath)),
      name_lost_(connection.addMatch(kNameLostMatch, [this](sdbus::Message& msg) {
          std::string name, old_owner, new_owner;
          msg >> name >> old_owner >> new_owner;
          peers_.erase(name);
      }))
{
}

Result<policy::Peer> BusCallerCache::credentials(const std::string& unique_name)
{
    if (auto it = peers_.find(unique_name); it != peers_.end())
        return it->second;
    std::map<std::string, sdbus::Variant> creds;
    try {
        ++bus_calls_;
        driver_->callMethod("GetConnectionCredentials")
            .onInterface(kDriver)
            .withArguments(unique_name)
            .storeResultsTo(creds);
    } catch (const sdbus::Error& e) {
        return fail(ErrorCode::SystemError, "cannot learn who " + unique_name + " is: " + e.getMessage());
    }
    std::uint32_t uid = 0, pid = 0;
    if (!read(creds, "UnixUserID", uid) || !read(creds, "ProcessID", pid))
        return fail(ErrorCode::SystemError, "the bus did not say who " + unique_name + " is");
    policy::Peer peer;
    peer.uid = uid;
    peer.pid = static_cast<pid_t>(pid);
    std::vector<std::uint32_t> gids;
    if (read(creds, "UnixGroupIDs", gids))
        // The groups the caller's process had when it connected, from the
        // kernel (as SO_PEERGROUPS gives them on the socket).
        peer.gids.assign(gids.begin(), gids.end());
    else
        // A bus that does not say (the specification lets it leave them
        // out when it cannot tell them all): no groups, so no group grant
        // applies (fail closed). Asking the user database instead, as
        // before, made the bus thread wait on NSS and granted the groups
        // the database lists rather than those the process holds.
        log_caller_warning("dbus-no-groups", "the bus did not give " + unique_name +
                                                 "'s groups (UnixGroupIDs): grants to groups do not apply to it");
    if (peers_.size() >= Limits::kCachedBusCallers)
        peers_.clear();  // a bound, not an expiry: entries are re-learnt on use
    peers_.emplace(unique_name, peer);
    return peer;
}

}  // namespace bpfbroker::brokerd
