// Who a D-Bus caller is, asked of the bus once per connection: one
// org.freedesktop.DBus.GetConnectionCredentials call per unique bus name
// (uid, pid and groups as the bus recorded them when the caller connected),
// kept until the bus says the name is gone (NameOwnerChanged with no new
// owner). Unique names are never reused on a bus, so an entry cannot come to
// describe someone else. Used on the bus thread only (sd-bus is not
// thread-safe); names for the ids come from peer_identity's short-lived
// cache or a worker (pending_name_lookups.h).
#pragma once

#include "policy/decide.h"

#include <bpfbroker/result.h>

#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <sdbus-c++/TypeTraits.h>

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

namespace bpfbroker::brokerd {

class BusCallerCache {
public:
    // Subscribes to NameOwnerChanged on `connection` (throws sdbus::Error
    // when the bus refuses the match).
    explicit BusCallerCache(sdbus::IConnection& connection);

    // The caller's uid, pid and groups (names not filled in); SystemError
    // when the bus cannot say (the name is already gone, say).
    Result<policy::Peer> credentials(const std::string& unique_name);

    [[nodiscard]] bool contains(const std::string& unique_name) const { return peers_.contains(unique_name); }
    [[nodiscard]] std::size_t size() const { return peers_.size(); }
    // GetConnectionCredentials calls made so far.
    [[nodiscard]] std::size_t bus_calls() const { return bus_calls_; }

private:
    std::unique_ptr<sdbus::IProxy> driver_;  // org.freedesktop.DBus
    sdbus::Slot name_lost_;
    std::unordered_map<std::string, policy::Peer> peers_;
    std::size_t bus_calls_ = 0;
};

}  // namespace bpfbroker::brokerd
