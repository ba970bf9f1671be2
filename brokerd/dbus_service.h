// The D-Bus face of bpfbrokerd: org.bpfbroker.Broker1 on the system bus
// (DBUS_SYSTEM_BUS_ADDRESS overrides where that is), served on a thread of
// its own so neither transport can stall the other. The adaptor is generated
// from org.bpfbroker.Broker1.xml; this file translates between it and the
// Broker, and asks polkit where a grant or an admin call needs it. Every
// method that needs the caller's names is asynchronous: names missing from
// the cache are looked up on a worker (PendingNameLookups) and the call is
// answered when they arrive, so the bus thread never waits on NSS.
#pragma once

#include "brokerd/broker.h"
#include "brokerd/broker_events.h"

#include <bpfbroker/interface.h>
#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace sdbus {
class IConnection;
}

namespace bpfbroker::brokerd {

class Broker1Object;
class PolkitAuthority;

class DbusService final : public BrokerEvents {
public:
    // Connects, takes the bus name and starts serving on a new thread.
    // Fails (with a reason to log once) when there is no bus to connect to.
    static Result<std::unique_ptr<DbusService>> start(Broker& broker, bool use_polkit);
    ~DbusService() override;

    // BrokerEvents: emitted as signals, from the bus thread.
    void program_approved(const std::string& program, const std::string& manifest_sha256) override;
    void program_revoked(const std::string& program) override;
    void catalog_reloaded(std::size_t programs) override;

private:
    DbusService() = default;
    void run();
    void post(std::function<void()> task);  // runs `task` on the bus thread

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<PolkitAuthority> polkit_;
    std::unique_ptr<Broker1Object> object_;
    UniqueFd wake_fd_;  // eventfd: tasks posted or stop requested
    std::mutex tasks_mutex_;
    std::vector<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace bpfbroker::brokerd
