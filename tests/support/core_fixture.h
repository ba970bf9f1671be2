// A Broker for unit tests of the core and its transports' handlers: a real
// signed demo catalog on a scratch root, a FakeProgramSource (no BPF), an
// audit log file, and request contexts for either transport. Needs no
// privilege beyond reading the build's development key (skips otherwise).
#pragma once

#include "brokerd/broker.h"
#include "support/fake_program_source.h"
#include "support/scratch_root.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace bpfbroker::test_support {

class CoreFixture : public ::testing::Test {
protected:
    void SetUp() override;
    // What the Broker is told the kernel offers (none by default).
    [[nodiscard]] virtual brokerd::FeatureReport features() const { return {}; }

    // A caller on the socket / on D-Bus (bus name ":1.42", polkit reachable).
    static brokerd::RequestContext socket_as(uid_t uid);
    static brokerd::RequestContext dbus_as(uid_t uid);

    // Approves `program` for anyone, as root over the socket.
    void approve(const std::string& program, bool polkit);
    [[nodiscard]] std::vector<std::string> audit_lines() const;

    ScratchRoot scratch_;
    std::unique_ptr<brokerd::AuditLog> audit_;
    FakeProgramSource* source_ = nullptr;  // owned by broker_
    std::unique_ptr<brokerd::Broker> broker_;
};

// How many of `lines` contain every one of `parts` (audit lines, say).
std::size_t count_lines_containing(const std::vector<std::string>& lines, const std::vector<std::string>& parts);

}  // namespace bpfbroker::test_support
