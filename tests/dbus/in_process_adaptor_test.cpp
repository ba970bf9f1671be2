// The D-Bus adaptor in process: a Broker with the fake program source (no
// BPF) served by DbusService on a private system bus, called by uid 65534
// over the bus. Checks the adaptor only translates: the core's hand-out
// arrives as fds and info, the core's refusals as the named errors, and the
// core (not the adaptor) writes the audit records, under transport=dbus.
// (sdbus-c++ 1.2 has no direct peer-to-peer connection, so the bus is a
// private dbus-daemon.)
#include "support/bus_fixture.h"

#include "brokerd/broker.h"
#include "brokerd/dbus_service.h"
#include "support/fake_program_source.h"

#include <sys/stat.h>

namespace bpfbroker::dbus_test {
namespace {

class InProcessAdaptor : public BusFixture {
protected:
    bool runs_daemon_process() const override { return false; }

    void SetUp() override
    {
        BusFixture::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        auto audit = brokerd::AuditLog::open(false, scratch() + "/in-process-audit.log");
        ASSERT_TRUE(audit) << audit.error().describe();
        audit_ = std::move(*audit);
        brokerd::BrokerConfig config;
        config.root = root();
        config.trust.owner = 0;
        broker_ = std::make_unique<brokerd::Broker>(config, brokerd::FeatureReport{}, *audit_,
                                                    std::make_unique<test_support::FakeProgramSource>());
        ASSERT_TRUE(broker_->reload());
        brokerd::RequestContext root_ctx{brokerd::TransportKind::Socket, {}, {}, false};
        root_ctx.peer.uid = 0;
        ASSERT_TRUE(broker_->approve(root_ctx, brokerd::ApproveRequest{"drop_small", {}, {}, true, false, {}}).ok());
        auto started = brokerd::DbusService::start(*broker_, false);
        ASSERT_TRUE(started) << started.error().describe();
        service_ = std::move(*started);
        ASSERT_TRUE(wait_for_name(kBusName, 10s));
    }

    void TearDown() override
    {
        service_.reset();
        broker_.reset();
        BusFixture::TearDown();
    }

    [[nodiscard]] std::string audit_text() const { return read_text_file(scratch() + "/in-process-audit.log"); }

    std::unique_ptr<brokerd::AuditLog> audit_;
    std::unique_ptr<brokerd::Broker> broker_;
    std::unique_ptr<brokerd::DbusService> service_;
};

TEST_F(InProcessAdaptor, hand_out_from_the_core_arrives_as_fds_and_info)
{
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        AcquireReply r;
        auto error = dbus_error_of([&] {
            proxy->callMethod("AcquireProgram").onInterface(kInterface).withArguments(std::string("drop_small"))
                .storeResultsTo(std::get<0>(r), std::get<1>(r), std::get<2>(r));
        });
        check(error.empty(), "AcquireProgram: " + error);
        struct stat st {};
        check(::fstat(std::get<0>(r).get(), &st) == 0 && S_ISREG(st.st_mode),
              "the program fd is not the fake source's memfd");
        auto& info = std::get<2>(r);
        check(info.at("type").get<std::string>() == "socket_filter", "info.type");
        check(info.at("instance").get<std::string>() == "shared", "info.instance");
        check(info.at("id").get<std::uint32_t>() >= 0x7ff00000u, "info.id is not the fake source's");
        return std::string("ok");
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_NE(audit_text().find("action=acquire transport=dbus program=drop_small uid=65534"), std::string::npos)
        << audit_text();
}

TEST_F(InProcessAdaptor, refusals_are_the_cores_with_their_names)
{
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        std::string message;
        auto acquire = dbus_error_of(
            [&] { proxy->callMethod("AcquireProgram").onInterface(kInterface).withArguments(std::string("udp_stats")); },
            &message);
        check(acquire == "org.bpfbroker.Broker1.Error.PermissionDenied", "unapproved acquire: " + acquire);
        auto approve = dbus_error_of(
            [&] {
                std::string sha;
                proxy->callMethod("Approve").onInterface(kInterface)
                    .withArguments(std::string("udp_stats"), std::vector<std::string>{"nobody"},
                                   std::vector<std::string>{}, false, false)
                    .storeResultsTo(sha);
            },
            &message);
        check(approve == "org.bpfbroker.Broker1.Error.PermissionDenied", "Approve: " + approve);
        check(message.find("polkit is not in use") != std::string::npos, "Approve refusal: " + message);
        return std::string("ok");
    });
    ASSERT_TRUE(result.ok()) << result.describe();
    auto audit = audit_text();
    EXPECT_NE(audit.find("action=acquire transport=dbus program=udp_stats uid=65534"), std::string::npos) << audit;
    EXPECT_NE(audit.find("action=approve transport=dbus program=udp_stats uid=65534"), std::string::npos) << audit;
}

// The agreed wire contract: AcquireProgramWithOptions(s, a{sv}) ->
// (a{sh} programs, a{sh} links, a{sh} maps, a{sv} info), options checked
// by the adaptor's translation and the choices decided by the core.
TEST_F(InProcessAdaptor, acquire_with_options_replies_by_program_name_and_checks_options)
{
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        using Fds = std::map<std::string, sdbus::UnixFd>;
        auto call = [&](std::map<std::string, sdbus::Variant> options, Fds* programs, Fds* links, std::string* message) {
            return dbus_error_of(
                [&] {
                    Fds p, l, m;
                    std::map<std::string, sdbus::Variant> info;
                    proxy->callMethod("AcquireProgramWithOptions").onInterface(kInterface)
                        .withArguments(std::string("drop_small"), options)
                        .storeResultsTo(p, l, m, info);
                    if (programs)
                        *programs = std::move(p);
                    if (links)
                        *links = std::move(l);
                },
                message);
        };
        Fds programs, links;
        std::string message;
        auto ok = call({}, &programs, &links, &message);
        check(ok.empty(), "no options: " + ok + ": " + message);
        check(programs.size() == 1 && programs.count("drop_small") && programs.at("drop_small").get() >= 0,
              "the program fd is not keyed by the program's name");
        check(links.empty(), "a client-attached program came with links");

        const std::string kInvalid = "org.bpfbroker.Broker1.Error.InvalidParameter";
        std::map<std::string, sdbus::Variant> chosen{{"min_len", sdbus::Variant(std::uint64_t{5})}};
        auto unknown_param = call({{"parameters", sdbus::Variant(chosen)}}, nullptr, nullptr, &message);
        check(unknown_param == kInvalid && message.find("min_len") != std::string::npos,
              "a parameter drop_small does not take: " + unknown_param + ": " + message);
        auto unknown_option = call({{"colour", sdbus::Variant(std::string("red"))}}, nullptr, nullptr, &message);
        check(unknown_option == kInvalid, "an unknown option: " + unknown_option);
        std::map<std::string, sdbus::Variant> as_string{{"min_len", sdbus::Variant(std::string("5"))}};
        auto wrong_type = call({{"parameters", sdbus::Variant(as_string)}}, nullptr, nullptr, &message);
        check(wrong_type == kInvalid, "a string parameter: " + wrong_type);
        return std::string("ok");
    });
    ASSERT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::dbus_test
