// What bpfbrokerd sends polkit, checked against a stand-in authority that
// owns org.freedesktop.PolicyKit1 on the private bus (as user polkitd, whom
// polkit's own bus policy lets own the name) and answers from a script:
// the subject must be the caller's `system-bus-name` (never a pid the caller
// could race), interaction allowed, and every kind of answer (yes, no,
// challenge, error, none yet) must end in the right decision without
// holding up other callers.
#include "support/bus_fixture.h"

#include <bpf/bpf.h>

#include <poll.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <thread>

namespace bpfbroker::dbus_test {
namespace {

const std::string kPermissionDenied = "org.bpfbroker.Broker1.Error.PermissionDenied";

using CheckResult = sdbus::Struct<bool, bool, std::map<std::string, std::string>>;
using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;

// (action, caller uid) -> "yes", "no", "challenge", "error", or "hold": no
// answer until the parent says "release yes" / "release no" (if ever).
std::string scripted_answer(const std::string& action, std::int64_t uid)
{
    static const std::map<std::pair<std::string, std::int64_t>, std::string> script = {
        {{"org.bpfbroker.acquire", kNobodyUid}, "yes"},
        {{"org.bpfbroker.acquire", kOtherUid}, "no"},
        {{"org.bpfbroker.acquire", kThirdUid}, "hold"},
        {{"org.bpfbroker.manage", kNobodyUid}, "challenge"},
        {{"org.bpfbroker.manage", kOtherUid}, "error"},
        {{"org.bpfbroker.manage", kThirdUid}, "hold"},
    };
    auto it = script.find({action, uid});
    return it == script.end() ? "no" : it->second;
}

// The stand-in's body (in a child running as polkitd). Reports every call to
// the parent as one line of space-separated key=value fields.
std::string run_stand_in(ChildChannel& parent)
{
    auto conn = sdbus::createSystemBusConnection(kPolkitBusName);
    auto bus = sdbus::createProxy(*conn, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bus->finishRegistration();
    auto object = sdbus::createObject(*conn, kPolkitPath);
    // "hold": answered on release, or with Cancelled on CancelCheckAuthorization.
    std::vector<std::pair<std::string, std::shared_ptr<sdbus::Result<CheckResult>>>> held;
    sdbus::IObject* obj = object.get();
    object->registerMethod("CheckAuthorization")
        .onInterface(kPolkitInterface)
        .withInputParamNames("subject", "action_id", "details", "flags", "cancellation_id")
        .withOutputParamNames("result")
        .implementedAs([&, obj](sdbus::Result<CheckResult>&& result, Subject subject, std::string action,
                                std::map<std::string, std::string> details, std::uint32_t flags, std::string cancel) {
            const std::string& kind = std::get<0>(subject);
            const auto& fields = std::get<1>(subject);
            std::string keys, name;
            for (const auto& [k, v] : fields)
                keys += (keys.empty() ? "" : ",") + k;
            if (auto it = fields.find("name"); it != fields.end() && it->second.containsValueOfType<std::string>())
                name = it->second.get<std::string>();
            std::int64_t uid = -1;
            if (kind == "system-bus-name" && !name.empty()) {
                try {
                    std::uint32_t u = 0;
                    bus->callMethod("GetConnectionUnixUser").onInterface("org.freedesktop.DBus").withArguments(name)
                        .storeResultsTo(u);
                    uid = u;
                } catch (const sdbus::Error&) {
                }
            }
            const auto* msg = obj->getCurrentlyProcessedMessage();
            std::string answer = scripted_answer(action, uid);
            parent.tell_parent("call kind=" + kind + " keys=" + (keys.empty() ? "-" : keys) + " name=" +
                               (name.empty() ? "-" : name) + " action=" + action + " flags=" + std::to_string(flags) +
                               " details=" + std::to_string(details.size()) + " cancel=" + (cancel.empty() ? "-" : cancel) +
                               " sender=" + (msg ? msg->getSender() : "-") + " uid=" + std::to_string(uid) +
                               " answer=" + answer);
            if (answer == "yes")
                result.returnResults(CheckResult(true, false, {}));
            else if (answer == "challenge")
                result.returnResults(CheckResult(false, true, {}));
            else if (answer == "error")
                result.returnError(sdbus::Error("org.freedesktop.PolicyKit1.Error.Failed", "scripted failure"));
            else if (answer == "hold")
                held.emplace_back(cancel, std::make_shared<sdbus::Result<CheckResult>>(std::move(result)));
            else
                result.returnResults(CheckResult(false, false, {}));
        });
    object->registerMethod("CancelCheckAuthorization")
        .onInterface(kPolkitInterface)
        .withInputParamNames("cancellation_id")
        .implementedAs([&](const std::string& id) {
            std::size_t cancelled = 0;
            std::erase_if(held, [&](const auto& h) {
                if (h.first != id)
                    return false;
                h.second->returnError(sdbus::Error("org.freedesktop.PolicyKit1.Error.Cancelled", "cancelled"));
                ++cancelled;
                return true;
            });
            parent.tell_parent("cancel id=" + id + " cancelled=" + std::to_string(cancelled));
        });
    object->finishRegistration();
    parent.tell_parent("ready " + conn->getUniqueName());
    // The bus and the parent's pipe in one loop: the parent releases held checks.
    for (;;) {
        while (conn->processPendingRequest()) {
        }
        while (auto line = parent.try_parent_line()) {
            if (*line != "release yes" && *line != "release no")
                continue;
            for (auto& r : held)
                r.second->returnResults(CheckResult(*line == "release yes", false, {}));
            parent.tell_parent("released " + std::to_string(held.size()));
            held.clear();
        }
        auto poll_data = conn->getEventLoopPollData();
        pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {parent.parent_fd(), POLLIN, 0}};
        if (::poll(fds, 2, poll_data.getPollTimeout()) < 0 && errno != EINTR)
            return "poll failed";
        if (fds[1].revents & (POLLHUP | POLLERR) && !(fds[1].revents & POLLIN))
            return "the parent went away";
    }
}

std::map<std::string, std::string> fields_of(const std::string& line)
{
    std::map<std::string, std::string> out;
    std::istringstream in(line);
    for (std::string tok; in >> tok;)
        if (auto eq = tok.find('='); eq != std::string::npos)
            out[tok.substr(0, eq)] = tok.substr(eq + 1);
    return out;
}

class DbusPolkitStandIn : public BusFixture {
protected:
    std::string before_daemon() override
    {
        const passwd* pw = ::getpwnam("polkitd");
        if (!pw)
            return "there is no user polkitd (Debian package polkitd) whom the bus lets own " + std::string(kPolkitBusName);
        stand_in_ = spawn_as(pw->pw_uid, pw->pw_gid, run_stand_in);
        auto ready = stand_in_.wait_message(20s);
        if (!ready || ready->rfind("ready ", 0) != 0)
            return "the stand-in authority did not start: " + stand_in_.wait(2s).describe();
        if (!wait_for_name(kPolkitBusName, 10s))
            return "the stand-in does not own " + std::string(kPolkitBusName);
        return "";
    }
    void TearDown() override
    {
        BusFixture::TearDown();
        stand_in_.kill();
    }

    // The next CheckAuthorization the stand-in saw, as fields; empty on timeout.
    std::map<std::string, std::string> next_check(Millis timeout = 10s)
    {
        auto line = stand_in_.wait_message(timeout);
        if (!line)
            return {};
        return fields_of(*line);
    }

    Child stand_in_;
};

Child spawn_approver(uid_t uid, gid_t gid, const std::string& program)
{
    return spawn_as(uid, gid, [program](ChildChannel& parent) {
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        parent.tell_parent(conn->getUniqueName());
        std::string message;
        std::string error = dbus_error_of(
            [&] {
                std::string sha;
                proxy->callMethod("Approve").onInterface(kInterface).withTimeout(std::chrono::seconds(150))
                    .withArguments(program, std::vector<std::string>{"nobody"}, std::vector<std::string>{}, false, false)
                    .storeResultsTo(sha);
            },
            &message);
        return error.empty() ? std::string("ok") : "ERROR " + error + ": " + message;
    });
}

TEST_F(DbusPolkitStandIn, acquire_check_names_the_callers_bus_name)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);
    BrokerBus bus;
    const std::string broker = bus.owner_of(kBusName);

    auto child = spawn_acquirer(kNobodyUid, kNobodyGid, "udp_stats");
    auto unique = child.wait_message();
    ASSERT_TRUE(unique.has_value());
    auto call = next_check();
    auto result = child.wait();
    EXPECT_TRUE(result.ok() && result.report == "ok") << result.describe();

    ASSERT_FALSE(call.empty()) << "the stand-in was never asked";
    EXPECT_EQ(call["kind"], "system-bus-name");
    EXPECT_EQ(call["keys"], "name") << "the subject carries more than the bus name";
    EXPECT_EQ(call["name"], *unique) << "the subject is not the caller's unique name";
    EXPECT_EQ(call["action"], "org.bpfbroker.acquire");
    EXPECT_EQ(call["flags"], "1") << "AllowUserInteraction expected";
    EXPECT_EQ(call["details"], "0");
    EXPECT_EQ(call["cancel"].rfind("bpfbroker-", 0), 0u) << "each check carries a cancellation id: " << call["cancel"];
    EXPECT_EQ(call["sender"], broker) << "the check did not come from bpfbrokerd";
    EXPECT_EQ(call["uid"], "65534");
}

TEST_F(DbusPolkitStandIn, acquire_is_refused_when_polkit_says_no)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);
    auto child = spawn_acquirer(kOtherUid, kOtherGid, "udp_stats");
    auto unique = child.wait_message();
    auto call = next_check();
    auto result = child.wait();
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u) << result.report;
    EXPECT_NE(result.report.find("polkit"), std::string::npos) << result.report;
    EXPECT_EQ(call["name"], unique.value_or("?"));
    EXPECT_EQ(call["answer"], "no");
}

TEST_F(DbusPolkitStandIn, approve_check_names_the_caller_and_challenge_is_a_refusal)
{
    BrokerBus watcher;
    auto child = spawn_approver(kNobodyUid, kNobodyGid, "udp_stats");
    auto unique = child.wait_message();
    auto call = next_check();
    auto result = child.wait();
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u) << result.report;
    EXPECT_NE(result.report.find("requires authentication"), std::string::npos) << result.report;
    EXPECT_EQ(call["kind"], "system-bus-name");
    EXPECT_EQ(call["name"], unique.value_or("?"));
    EXPECT_EQ(call["action"], "org.bpfbroker.manage");
    EXPECT_EQ(call["flags"], "1");
    watcher.wait_for([] { return false; }, 300ms);
    EXPECT_TRUE(watcher.signals().empty());
}

TEST_F(DbusPolkitStandIn, polkit_error_is_a_refusal_that_says_so)
{
    auto child = spawn_approver(kOtherUid, kOtherGid, "udp_stats");
    (void)child.wait_message();
    auto call = next_check();
    auto result = child.wait();
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u) << result.report;
    EXPECT_NE(result.report.find("polkit could not be asked (org.freedesktop.PolicyKit1.Error.Failed: scripted failure)"),
              std::string::npos)
        << result.report;
    EXPECT_EQ(call["answer"], "error");
}

// The answer is awaited on the bus thread without blocking it: while polkit
// has not answered one caller, others are served, and the daemon still
// stops cleanly (TearDown checks its exit status).
TEST_F(DbusPolkitStandIn, unanswered_check_does_not_hold_up_other_callers)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);

    auto waiting_admin = spawn_approver(kThirdUid, kThirdGid, "drop_small");
    ASSERT_TRUE(waiting_admin.wait_message().has_value());
    auto call = next_check();
    ASSERT_EQ(call["answer"], "hold");

    auto client = Client::connect_dbus(5s);
    ASSERT_TRUE(client.has_value()) << client.error().describe();
    auto start = std::chrono::steady_clock::now();
    auto list = client->list_programs();
    ASSERT_TRUE(list.has_value()) << list.error().describe();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

    auto acquirer = spawn_acquirer(kNobodyUid, kNobodyGid, "udp_stats");
    auto acquired = acquirer.wait(20s);
    EXPECT_TRUE(acquired.ok() && acquired.report == "ok") << acquired.describe();

    auto waiting_acquirer = spawn_acquirer(kThirdUid, kThirdGid, "udp_stats");
    (void)waiting_acquirer.wait_message();
    // udp_stats is granted to nobody only: no polkit grant matches kThirdUid, so
    // it is refused at once without a check.
    auto refused = waiting_acquirer.wait(20s);
    EXPECT_TRUE(refused.ok() && refused.report.rfind("ERROR " + kPermissionDenied, 0) == 0) << refused.describe();
    EXPECT_TRUE(daemon_running());
    waiting_admin.kill();
}

// Found in review: a user whose agent never answers could pile up pending
// polkit calls without bound. Past kMaxPendingPerUid (4) checks of one uid,
// the next call is refused at once, without asking polkit.
TEST_F(DbusPolkitStandIn, pending_checks_per_uid_are_bounded)
{
    std::vector<Child> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(spawn_approver(kThirdUid, kThirdGid, "drop_small"));
        ASSERT_TRUE(held.back().wait_message().has_value());
        ASSERT_EQ(next_check()["answer"], "hold") << "check " << i + 1;
    }
    auto fifth = spawn_approver(kThirdUid, kThirdGid, "drop_small");
    (void)fifth.wait_message();
    auto refused = fifth.wait(20s);
    EXPECT_TRUE(refused.ok()) << refused.describe();
    EXPECT_EQ(refused.report.rfind("ERROR " + kPermissionDenied, 0), 0u) << refused.report;
    EXPECT_NE(refused.report.find("polkit checks pending"), std::string::npos) << refused.report;
    for (auto& h : held)
        h.kill();
    EXPECT_TRUE(daemon_running());
}

// The grant is decided again once polkit answers: a revocation made while
// the polkit check was pending (an interactive check may take minutes) must
// not be overridden by polkit's later "yes".
TEST_F(DbusPolkitStandIn, revoke_during_pending_polkit_check_wins)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);

    auto acquirer = spawn_acquirer(kThirdUid, kThirdGid, "udp_stats");
    ASSERT_TRUE(acquirer.wait_message().has_value());
    auto call = next_check();
    ASSERT_EQ(call["answer"], "hold") << "the check did not reach the stand-in";

    auto client = Client::connect_dbus(5s);
    ASSERT_TRUE(client.has_value()) << client.error().describe();
    auto removed = client->revoke("udp_stats");
    ASSERT_TRUE(removed.has_value()) << removed.error().describe();
    ASSERT_EQ(removed->removed_approvals, 1u);

    stand_in_.tell_child("release yes");
    auto released = stand_in_.wait_message();
    ASSERT_EQ(released.value_or("?"), "released 1");
    auto result = acquirer.wait(20s);
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u)
        << "udp_stats was handed out after its only grant was revoked (polkit answered yes later): " << result.report;
}

// The caller hangs up while polkit is still deciding; polkit then says yes.
// The instance loaded for the reply nobody receives must not stay alive in
// the daemon (or the bus): the kernel frees the program.
TEST_F(DbusPolkitStandIn, caller_gone_before_polkit_answers_leaves_no_instance)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);

    auto acquirer = spawn_acquirer(kThirdUid, kThirdGid, "udp_stats");
    ASSERT_TRUE(acquirer.wait_message().has_value());
    auto check = next_check();
    ASSERT_EQ(check["answer"], "hold");
    acquirer.kill();

    // The daemon sees the caller's name vanish and cancels its check, which
    // would otherwise leave a dialog up for nobody.
    auto cancel = stand_in_.wait_message();
    ASSERT_TRUE(cancel.has_value()) << "no CancelCheckAuthorization after the caller hung up";
    auto cancel_fields = fields_of(*cancel);
    EXPECT_EQ(cancel_fields["id"], check["cancel"]) << *cancel;
    EXPECT_EQ(cancel_fields["cancelled"], "1") << *cancel;
    stand_in_.tell_child("release yes");
    ASSERT_EQ(stand_in_.wait_message().value_or("?"), "released 0");

    // The daemon audits what it handed out, with the kernel's program id.
    std::uint32_t prog_id = 0;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (prog_id == 0 && std::chrono::steady_clock::now() < deadline) {
        for (const auto& line : audit_lines()) {
            auto f = fields_of(line);
            if (f["action"] == "acquire" && f["uid"] == std::to_string(kThirdUid) && f["decision"] == "allow" &&
                !f["prog_id"].empty())
                prog_id = static_cast<std::uint32_t>(std::stoul(f["prog_id"]));
        }
        std::this_thread::sleep_for(20ms);
    }
    if (prog_id == 0) {
        // Refusing a caller who is gone is fine too: nothing was loaded.
        SUCCEED() << "the daemon did not hand out to a vanished caller";
        return;
    }
    RecordProperty("handed_out_prog_id", std::to_string(prog_id));
    bool freed = false;
    deadline = std::chrono::steady_clock::now() + 10s;
    while (!freed && std::chrono::steady_clock::now() < deadline) {
        int fd = bpf_prog_get_fd_by_id(prog_id);
        if (fd < 0 && errno == ENOENT)
            freed = true;
        if (fd >= 0)
            ::close(fd);
        if (!freed)
            std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(freed) << "program " << prog_id << " loaded for a caller that hung up is still alive after 10 s";
    EXPECT_TRUE(daemon_running());
}

// Same for an admin call: Approve asked while the caller was authorized,
// polkit answers later; the answer must be checked against the state then.
// (Here polkit says no after a while: nothing may be approved.)
TEST_F(DbusPolkitStandIn, late_polkit_no_refuses_the_admin_call)
{
    BrokerBus watcher;
    auto approver = spawn_approver(kThirdUid, kThirdGid, "udp_stats");
    ASSERT_TRUE(approver.wait_message().has_value());
    auto call = next_check();
    ASSERT_EQ(call["action"], "org.bpfbroker.manage");
    stand_in_.tell_child("release no");
    ASSERT_EQ(stand_in_.wait_message().value_or("?"), "released 1");
    auto result = approver.wait(20s);
    ASSERT_TRUE(result.ok()) << result.describe();
    EXPECT_EQ(result.report.rfind("ERROR " + kPermissionDenied + ": ", 0), 0u) << result.report;
    watcher.wait_for([] { return false; }, 300ms);
    EXPECT_TRUE(watcher.signals().empty());
}

}  // namespace
}  // namespace bpfbroker::dbus_test
