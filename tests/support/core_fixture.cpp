// The core test fixture; see core_fixture.h.
#include "support/core_fixture.h"

#include "support/io.h"

#include <unistd.h>

#include <algorithm>


namespace bpfbroker::test_support {

void CoreFixture::SetUp()
{
    ASSERT_EQ(scratch_.create("bpfbroker-core"), "");
    auto made = scratch_.make_demo_root();
    if (!made.empty() && ::geteuid() != 0)
        GTEST_SKIP() << "cannot lay out the signed demo root as uid " << ::geteuid() << ": " << made;
    ASSERT_EQ(made, "");
    auto audit = brokerd::AuditLog::open(false, scratch_.path("audit.log"));
    ASSERT_TRUE(audit) << audit.error().describe();
    audit_ = std::move(*audit);
    brokerd::BrokerConfig config;
    config.root = scratch_.root();
    config.trust.owner = ::geteuid();
    auto source = std::make_unique<FakeProgramSource>();
    source_ = source.get();
    broker_ = std::make_unique<brokerd::Broker>(config, features(), *audit_, std::move(source));
    ASSERT_TRUE(broker_->reload());
}

brokerd::RequestContext CoreFixture::socket_as(uid_t uid)
{
    brokerd::RequestContext ctx{brokerd::TransportKind::Socket, {}, {}, false};
    ctx.peer.uid = uid;
    ctx.peer.gid = uid;
    ctx.peer.pid = 4242;
    return ctx;
}

brokerd::RequestContext CoreFixture::dbus_as(uid_t uid)
{
    auto ctx = socket_as(uid);
    ctx.transport = brokerd::TransportKind::Dbus;
    ctx.bus_name = ":1.42";
    ctx.polkit_reachable = true;
    return ctx;
}

void CoreFixture::approve(const std::string& program, bool polkit)
{
    brokerd::ApproveRequest req{program, {}, {}, true, polkit, {}};
    auto g = broker_->approve(socket_as(0), req);
    ASSERT_TRUE(g.ok()) << (g.denied() ? g.error().describe() : "asked polkit");
}

std::vector<std::string> CoreFixture::audit_lines() const
{
    return read_text_lines(scratch_.path("audit.log"));
}

std::size_t count_lines_containing(const std::vector<std::string>& lines, const std::vector<std::string>& parts)
{
    return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
        return std::all_of(parts.begin(), parts.end(), [&](const std::string& p) { return l.find(p) != std::string::npos; });
    }));
}

}  // namespace bpfbroker::test_support
