// Asynchronous polkit checks; see polkit_authority.h.
#include "brokerd/polkit_authority.h"

#include <chrono>
#include <map>

namespace bpfbroker::brokerd {

namespace {

constexpr const char* kService = "org.freedesktop.PolicyKit1";
constexpr const char* kPath = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* kInterface = "org.freedesktop.PolicyKit1.Authority";
constexpr std::uint32_t kAllowUserInteraction = 1;
// An interactive check waits for a person; bounded so a lost agent cannot
// keep the request (and its caller) waiting forever.
constexpr auto kCheckTimeout = std::chrono::minutes(2);

}  // namespace

PolkitAuthority::PolkitAuthority(sdbus::IConnection& connection)
    : proxy_(sdbus::createProxy(connection, kService, kPath)),
      bus_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus"))
{
    proxy_->finishRegistration();
    // A caller that hangs up while polkit is still asking a person should
    // not leave an authentication dialog behind: cancel its checks.
    bus_->uponSignal("NameOwnerChanged")
        .onInterface("org.freedesktop.DBus")
        .call([this](const std::string& name, const std::string&, const std::string& new_owner) {
            if (new_owner.empty())
                cancel_checks_of(name);
        });
    bus_->finishRegistration();
}

void PolkitAuthority::cancel_checks_of(const std::string& bus_name)
{
    auto it = pending_by_name_.find(bus_name);
    if (it == pending_by_name_.end())
        return;
    for (const auto& id : it->second) {
        try {
            proxy_->callMethodAsync("CancelCheckAuthorization")
                .onInterface(kInterface)
                .withArguments(id)
                .uponReplyInvoke([](const sdbus::Error*) {});  // best effort: the check may have ended
        } catch (const sdbus::Error&) {
        }
    }
}

void PolkitAuthority::check(uid_t uid, const std::string& bus_name, const std::string& action, Callback callback)
{
    if (pending_[uid] >= kMaxPendingPerUid) {
        callback(PolkitVerdict(false, action, uid, bus_name,
                               "uid " + std::to_string(uid) + " already has " + std::to_string(kMaxPendingPerUid) +
                                   " polkit checks pending; try again when they are answered"));
        return;
    }
    ++pending_[uid];
    std::string cancellation_id = "bpfbroker-" + std::to_string(++checks_started_);
    pending_by_name_[bus_name].push_back(cancellation_id);
    auto done = [this, uid, bus_name, action, cancellation_id, callback = std::move(callback)](bool allowed,
                                                                                              std::string why) {
        if (--pending_[uid] == 0)
            pending_.erase(uid);
        auto& ids = pending_by_name_[bus_name];
        std::erase(ids, cancellation_id);
        if (ids.empty())
            pending_by_name_.erase(bus_name);
        callback(PolkitVerdict(allowed, action, uid, bus_name, std::move(why)));
    };
    using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
    Subject subject{"system-bus-name", std::map<std::string, sdbus::Variant>{{"name", sdbus::Variant(bus_name)}}};
    std::map<std::string, std::string> details;
    try {
        proxy_->callMethodAsync("CheckAuthorization")
            .onInterface(kInterface)
            .withTimeout(kCheckTimeout)
            .withArguments(subject, action, details, kAllowUserInteraction, cancellation_id)
            .uponReplyInvoke([done, action](const sdbus::Error* error,
                                            sdbus::Struct<bool, bool, std::map<std::string, std::string>> result) {
                if (error) {
                    done(false, "polkit could not be asked (" + error->getName() + ": " + error->getMessage() + ")");
                    return;
                }
                bool authorized = std::get<0>(result);
                bool challenge = std::get<1>(result);
                if (authorized)
                    done(true, "polkit authorized " + action);
                else
                    done(false, challenge ? "polkit requires authentication for " + action + " and none was given"
                                          : "polkit denied " + action);
            });
    } catch (const sdbus::Error& e) {
        done(false, "polkit could not be asked (" + e.getName() + ": " + e.getMessage() + ")");
    }
}

}  // namespace bpfbroker::brokerd
