// Asynchronous polkit checks over the bus the D-Bus service already uses:
// org.freedesktop.PolicyKit1.Authority.CheckAuthorization with the
// `system-bus-name` subject of the caller, so polkit itself resolves the
// caller's process and session from the bus (nothing the caller says).
// The answer arrives on the bus thread; other callers are served meanwhile.
#pragma once

#include "brokerd/limits.h"
#include "brokerd/polkit_verdict.h"

#include <sdbus-c++/sdbus-c++.h>

#include <sys/types.h>

#include <functional>
#include <map>
#include <vector>
#include <memory>
#include <string>

namespace bpfbroker::brokerd {


class PolkitAuthority {
public:
    explicit PolkitAuthority(sdbus::IConnection& connection);

    // At most this many checks of one uid wait for polkit at a time: an
    // agent that never answers must not pile up pending calls on the bus.
    static constexpr unsigned kMaxPendingPerUid = Limits::kPolkitPendingPerUid;

    // `done(verdict)`: polkit's answer about this uid, bus name and action
    // (why() explains a refusal or an unavailable polkit). Called on the bus
    // thread, like check() itself.
    using Callback = std::function<void(const PolkitVerdict& verdict)>;
    void check(uid_t uid, const std::string& bus_name, const std::string& action, Callback done);

private:
    void cancel_checks_of(const std::string& bus_name);

    std::unique_ptr<sdbus::IProxy> proxy_;
    std::unique_ptr<sdbus::IProxy> bus_;  // NameOwnerChanged: callers that hang up
    std::map<uid_t, unsigned> pending_;
    std::map<std::string, std::vector<std::string>> pending_by_name_;  // bus name -> cancellation ids
    std::uint64_t checks_started_ = 0;
};

}  // namespace bpfbroker::brokerd
