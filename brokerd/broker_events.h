// Notifications the Broker gives after a policy change, whatever transport
// caused it, so the D-Bus service can emit its signals.
#pragma once

#include <cstddef>
#include <string>

namespace bpfbroker::brokerd {

class BrokerEvents {
public:
    virtual ~BrokerEvents() = default;
    virtual void program_approved(const std::string& program, const std::string& manifest_sha256) = 0;
    virtual void program_revoked(const std::string& program) = 0;
    virtual void catalog_reloaded(std::size_t programs) = 0;
};

}  // namespace bpfbroker::brokerd
