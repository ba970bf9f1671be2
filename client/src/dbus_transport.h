// Client transport over D-Bus (org.bpfbroker.Broker1 on the system bus, or
// wherever DBUS_SYSTEM_BUS_ADDRESS points). Each method's D-Bus reply is
// turned straight into Client's types.
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

    // Without options: AcquireProgram (client-attached programs only). With
    // options: AcquireProgramWithOptions; a daemon without it is Unsupported.
    Result<Program> acquire(std::string_view name, const AcquireOptions& options, bool with_options) override;
    Result<std::vector<ProgramEntry>> list_programs() override;
    Result<std::vector<Feature>> features() override;
    Result<std::string> metrics() override;
    Result<std::string> approve(std::string_view program, const ApproveOptions& options) override;
    Result<RevokeResult> revoke(std::string_view program) override;
    Result<void> reload() override;

private:
    DbusTransport() = default;
    Result<Program> acquire_with_options(std::string_view name, const AcquireOptions& options);

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::chrono::milliseconds timeout_{};
};

}  // namespace bpfbroker
