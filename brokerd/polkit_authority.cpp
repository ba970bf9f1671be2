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
    : proxy_(sdbus::createProxy(connection, kService, kPath))
{
    proxy_->finishRegistration();
}

void PolkitAuthority::check(uid_t uid, const std::string& bus_name, const std::string& action, Callback callback)
{
    if (pending_[uid] >= kMaxPendingPerUid) {
        callback(false, "uid " + std::to_string(uid) + " already has " + std::to_string(kMaxPendingPerUid) +
                            " polkit checks pending; try again when they are answered");
        return;
    }
    ++pending_[uid];
    auto done = [this, uid, callback = std::move(callback)](bool allowed, std::string why) {
        if (--pending_[uid] == 0)
            pending_.erase(uid);
        callback(allowed, std::move(why));
    };
    using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
    Subject subject{"system-bus-name", std::map<std::string, sdbus::Variant>{{"name", sdbus::Variant(bus_name)}}};
    std::map<std::string, std::string> details;
    try {
        proxy_->callMethodAsync("CheckAuthorization")
            .onInterface(kInterface)
            .withTimeout(kCheckTimeout)
            .withArguments(subject, action, details, kAllowUserInteraction, std::string())
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
