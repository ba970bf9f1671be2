// Client transport over D-Bus (org.bpfbroker.Broker1 on the system bus, or
// wherever DBUS_SYSTEM_BUS_ADDRESS points). Replies are turned into the
// same JSON shape the socket uses, so Client has one parser for both.
#pragma once

#include <bpfbroker/client.h>

#include <memory>

namespace sdbus {
class IConnection;
class IProxy;
}  // namespace sdbus

namespace bpfbroker {

class DbusTransport final : public Transport {
public:
    static Result<std::unique_ptr<DbusTransport>> connect(std::chrono::milliseconds timeout);
    ~DbusTransport() override;
    Result<Reply> call(std::string_view member, const std::string& parameters_json) override;

private:
    DbusTransport() = default;
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::chrono::milliseconds timeout_{};
};

}  // namespace bpfbroker
