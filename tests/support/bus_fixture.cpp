// D-Bus end-to-end test support; see bus_fixture.h.
#include "bus_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

namespace bpfbroker::dbus_test {

namespace {

using test_support::Clock;
using test_support::read_line;
using test_support::remaining_ms;
using test_support::write_all;
using test_support::write_text_file;

constexpr const char* kPolkitd = "/usr/lib/polkit-1/polkitd";
constexpr const char* kPolkitActionsDir = "/usr/share/polkit-1/actions";
constexpr const char* kPolkitRulesDir = "/etc/polkit-1/rules.d";
constexpr const char* kActionFileName = "org.bpfbroker.policy";
constexpr const char* kRulesFileName = "49-bpfbroker-dbus-test.rules";
// The first line of every rules file this suite writes: how a leftover of a
// crashed run is told apart from a file someone else put there.
constexpr const char* kRulesMarker = "// bpfbroker dbus_e2e_tests: temporary test rules, removed after each test\n";

// The first executable `name` in PATH (or the usual places), or "".
std::string find_program(const std::string& name)
{
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    path += ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    std::stringstream ss(path);
    std::string dir;
    while (std::getline(ss, dir, ':')) {
        if (dir.empty())
            continue;
        std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return "";
}

std::string replace_all(std::string text, const std::string& from, const std::string& to)
{
    for (std::size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size())
        text.replace(pos, from.size(), to);
    return text;
}

// In polkitd's child before exec: a private mount namespace in which the
// test's directories hide the real action and rules directories.
std::string enter_polkit_namespace(const std::string& actions, const std::string& rules)
{
    if (::unshare(CLONE_NEWNS) != 0)
        return "unshare(CLONE_NEWNS): " + errno_text(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return "making / private: " + errno_text(errno);
    if (::mount(actions.c_str(), kPolkitActionsDir, nullptr, MS_BIND, nullptr) != 0)
        return std::string("bind-mounting over ") + kPolkitActionsDir + ": " + errno_text(errno);
    if (::mount(rules.c_str(), kPolkitRulesDir, nullptr, MS_BIND, nullptr) != 0)
        return std::string("bind-mounting over ") + kPolkitRulesDir + ": " + errno_text(errno);
    return "";
}

// Whether a child can set up that namespace (a container may forbid it).
std::string probe_polkit_namespace(const std::string& actions, const std::string& rules)
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        return "pipe2: " + errno_text(errno);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        std::string why = enter_polkit_namespace(actions, rules);
        write_all(p[1], why);
        ::_exit(why.empty() ? 0 : 1);
    }
    ::close(p[1]);
    UniqueFd rd(p[0]);
    if (pid < 0)
        return "fork: " + errno_text(errno);
    std::string why;
    char buf[256];
    for (ssize_t n; (n = ::read(rd.get(), buf, sizeof buf)) > 0;)
        why.append(buf, static_cast<std::size_t>(n));
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return "";
    return why.empty() ? "the probe child failed" : why;
}

}  // namespace

// ---- basics ----------------------------------------------------------------------

std::string polkit_user_name(uid_t uid)
{
    if (const passwd* pw = ::getpwuid(uid))
        return pw->pw_name;
    return std::to_string(uid);
}

std::string polkitd_unavailable_reason()
{
    if (::access(kPolkitd, X_OK) != 0)
        return std::string(kPolkitd) + " is missing (Debian package polkitd)";
    if (::getpwnam("polkitd") == nullptr)
        return "there is no user polkitd for polkitd to run as";
    if (::access(kPolkitRulesDir, F_OK) != 0 || ::access(kPolkitActionsDir, F_OK) != 0)
        return std::string(kPolkitRulesDir) + " or " + kPolkitActionsDir + " is missing";
    return "";
}

// ---- D-Bus helpers -------------------------------------------------------------

std::string dbus_error_of(const std::function<void()>& call, std::string* message)
{
    try {
        call();
    } catch (const sdbus::Error& e) {
        if (message)
            *message = e.getMessage();
        return e.getName();
    }
    if (message)
        message->clear();
    return "";
}

BrokerBus::BrokerBus()
    : connection_(sdbus::createSystemBusConnection())
{
    proxy_ = sdbus::createProxy(*connection_, kBusName, kObjectPath);
    auto record = [this](std::string member, std::vector<std::string> args) {
        const auto* msg = proxy_->getCurrentlyProcessedMessage();
        signals_.push_back(Signal{std::move(member), std::move(args), msg ? msg->getSender() : "",
                                  msg ? msg->getPath() : ""});
    };
    proxy_->uponSignal("ProgramApproved").onInterface(kInterface).call([record](std::string program, std::string sha) {
        record("ProgramApproved", {program, sha});
    });
    proxy_->uponSignal("ProgramRevoked").onInterface(kInterface).call([record](std::string program) {
        record("ProgramRevoked", {program});
    });
    proxy_->uponSignal("CatalogReloaded").onInterface(kInterface).call([record](std::uint32_t programs) {
        record("CatalogReloaded", {std::to_string(programs)});
    });
    proxy_->finishRegistration();
}

BrokerBus::~BrokerBus()
{
    proxy_.reset();
    connection_.reset();
}

std::string BrokerBus::owner_of(const std::string& name)
{
    auto bus = sdbus::createProxy(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bus->finishRegistration();
    std::string owner;
    try {
        bus->callMethod("GetNameOwner").onInterface("org.freedesktop.DBus").withArguments(name).storeResultsTo(owner);
    } catch (const sdbus::Error&) {
        return "";
    }
    return owner;
}

void BrokerBus::drain()
{
    while (connection_->processPendingRequest()) {
    }
}

bool BrokerBus::wait_for(const std::function<bool()>& done, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        drain();
        if (done())
            return true;
        if (Clock::now() >= deadline)
            return false;
        auto poll_data = connection_->getEventLoopPollData();
        int wait = std::min(remaining_ms(deadline), 100);
        int t = poll_data.getPollTimeout();
        if (t >= 0 && t < wait)
            wait = t;
        pollfd p{poll_data.fd, poll_data.events, 0};
        ::poll(&p, 1, wait);
    }
}

std::vector<BrokerBus::Signal> BrokerBus::signals_named(const std::string& member) const
{
    std::vector<Signal> out;
    for (const auto& s : signals_)
        if (s.member == member)
            out.push_back(s);
    return out;
}

// ---- the fixture -------------------------------------------------------------------

void BusFixture::SetUp()
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root: a private system bus, bpfbrokerd loading BPF, children dropping to uid 65534";
    if (polkit_mode() == PolkitMode::Real) {
        if (auto why = polkitd_unavailable_reason(); !why.empty())
            GTEST_SKIP() << "polkitd cannot run here: " << why;
    }

    for (uid_t uid : {kNobodyUid, kOtherUid, kThirdUid})
        if (::getpwuid(uid) == nullptr)
            GTEST_SKIP() << "uid " << uid << " has no passwd entry: dbus-daemon would not let it connect";

    // Mode 0755: uid 65534 reaches the bus socket inside.
    ASSERT_EQ(scratch_.create("bpfbroker-dbus"), "");
    bus_socket_ = scratch_.path("bus");

    if (const char* old = std::getenv("DBUS_SYSTEM_BUS_ADDRESS")) {
        had_saved_bus_address_ = true;
        saved_bus_address_ = old;
    }

    ASSERT_NO_FATAL_FAILURE(start_bus());
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address().c_str(), 1);

    if (polkit_mode() == PolkitMode::Real) {
        std::string why = prepare_polkit_files();
        if (why.rfind("skip:", 0) == 0)
            GTEST_SKIP() << why.substr(5);
        ASSERT_EQ(why, "");
        ASSERT_NO_FATAL_FAILURE(start_polkitd());
    }
    {
        std::string why = before_daemon();
        ASSERT_EQ(why, "") << why;
    }
    if (runs_daemon_process()) {
        ASSERT_NO_FATAL_FAILURE(start_daemon());
    } else {
        ASSERT_EQ(scratch_.make_demo_root(), "");
    }
}

void BusFixture::start_bus()
{
    std::string dbus_daemon = find_program("dbus-daemon");
    ASSERT_FALSE(dbus_daemon.empty()) << "dbus-daemon is missing (Debian package dbus-daemon)";
    std::string tmpl = read_text_file(source_dir() + "/tests/dbus/system-bus.conf.in");
    ASSERT_FALSE(tmpl.empty()) << "cannot read tests/dbus/system-bus.conf.in";
    std::string conf = replace_all(tmpl, "@BUS_SOCKET@", bus_socket_);
    conf = replace_all(conf, "@PROJECT_POLICY@", source_dir() + "/systemd/org.bpfbroker.Broker1.conf");
    bus_config_ = scratch_.path("system-bus.conf");
    ASSERT_TRUE(write_text_file(bus_config_, conf, 0644)) << errno_text(errno);

    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0) << errno_text(errno);
    UniqueFd rd(p[0]), wr(p[1]);
    SpawnOptions o;
    o.argv = {dbus_daemon, "--config-file=" + bus_config_, "--nofork", "--nopidfile", "--nosyslog",
              "--print-address=3"};
    o.output_file = scratch_.path("dbus-daemon.log");
    o.notify_fd = wr.get();
    bus_ = spawn(o);
    wr.reset();
    std::string buffered;
    auto address = read_line(rd.get(), buffered, Clock::now() + 20s);
    ASSERT_TRUE(address.has_value()) << "dbus-daemon did not start:\n" << read_text_file(scratch_.path("dbus-daemon.log"));
    ASSERT_NE(address->find(bus_socket_), std::string::npos) << *address;
}

bool BusFixture::wait_for_name(const std::string& name, Millis timeout)
{
    const auto deadline = Clock::now() + timeout;
    std::unique_ptr<sdbus::IConnection> conn;
    std::unique_ptr<sdbus::IProxy> bus;
    try {
        conn = sdbus::createSystemBusConnection();
        bus = sdbus::createProxy(*conn, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        bus->finishRegistration();
    } catch (const sdbus::Error& e) {
        ADD_FAILURE() << "cannot connect to the private bus: " << e.getName() << ": " << e.getMessage();
        return false;
    }
    while (Clock::now() < deadline) {
        bool has = false;
        try {
            bus->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(name).storeResultsTo(has);
        } catch (const sdbus::Error&) {
        }
        if (has)
            return true;
        if (name == kBusName && !daemon_.running())
            return false;
        if (name == kPolkitBusName && polkitd_.pid() > 0 && !polkitd_.running())
            return false;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

void BusFixture::start_daemon()
{
    ASSERT_EQ(scratch_.make_demo_root(), "");
    test_support::DaemonOptions o;
    o.root = root();
    o.audit_log = scratch_.path("audit.log");
    o.log_file = scratch_.path("bpfbrokerd.log");
    o.env = daemon_env();
    o.env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address();
    daemon_.start(std::move(o));
    ASSERT_TRUE(wait_for_name(kBusName, 30s))
        << "bpfbrokerd did not take " << kBusName << " on the private bus; its log:\n" << tail(daemon_log());
}

std::string BusFixture::prepare_polkit_files()
{
    std::string action = read_text_file(source_dir() + "/systemd/" + kActionFileName);
    if (action.empty())
        return "cannot read systemd/org.bpfbroker.policy";
    std::string rules = kRulesMarker + polkit_rules();

    const char* mode = std::getenv("BPFBROKER_DBUS_TEST_POLKIT_FILES");
    polkit_namespace_ = !(mode && std::string(mode) == "host");
    std::string dir = scratch_.path("polkit");
    std::string actions_dir = dir + "/actions";
    std::string rules_dir = dir + "/rules.d";
    if (polkit_namespace_) {
        // polkitd reads rules as user polkitd: the directories and files must
        // be readable to it.
        if (::mkdir(dir.c_str(), 0755) != 0 || ::mkdir(actions_dir.c_str(), 0755) != 0 ||
            ::mkdir(rules_dir.c_str(), 0755) != 0)
            return "mkdir " + dir + ": " + errno_text(errno);
        if (!write_text_file(actions_dir + "/" + kActionFileName, action, 0644) ||
            !write_text_file(rules_dir + "/" + kRulesFileName, rules, 0644))
            return "cannot write the polkit files: " + errno_text(errno);
        std::string why = probe_polkit_namespace(actions_dir, rules_dir);
        if (why.empty())
            return "";
        std::cerr << "[dbus_e2e] no private mount namespace for polkitd (" << why
                  << "); installing the polkit files on the host instead\n";
        polkit_namespace_ = false;
    }

    // Host mode: the real directories, one test at a time (a lock on the
    // rules directory), only files this test creates are removed.
    polkit_lock_ = UniqueFd(::open(kPolkitRulesDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!polkit_lock_)
        return std::string("open ") + kPolkitRulesDir + ": " + errno_text(errno);
    auto deadline = Clock::now() + 120s;
    while (::flock(polkit_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
        if (Clock::now() >= deadline)
            return std::string("another test holds the lock on ") + kPolkitRulesDir;
        std::this_thread::sleep_for(50ms);
    }
    auto create = [this](const std::string& path, const std::string& content) -> std::string {
        UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!fd)
            return path + ": " + errno_text(errno);
        write_all(fd.get(), content);
        ::fchmod(fd.get(), 0644);
        struct stat st {};
        ::fstat(fd.get(), &st);
        host_files_created_.push_back({path, {st.st_dev, st.st_ino}});
        return "";
    };
    std::string action_path = std::string(kPolkitActionsDir) + "/" + kActionFileName;
    if (::access(action_path.c_str(), F_OK) == 0) {
        if (read_text_file(action_path) != action)
            return "skip:" + action_path + " exists and differs from systemd/org.bpfbroker.policy; not replacing it";
        // Installed already (e.g. by make install): use it, leave it.
    } else if (auto why = create(action_path, action); !why.empty()) {
        return why;
    }
    std::string rules_path = std::string(kPolkitRulesDir) + "/" + kRulesFileName;
    if (::access(rules_path.c_str(), F_OK) == 0) {
        if (read_text_file(rules_path).rfind(kRulesMarker, 0) != 0)
            return "skip:" + rules_path + " exists and was not written by these tests; not replacing it";
        // A leftover of a run that crashed: ours to replace and remove.
        ::unlink(rules_path.c_str());
    }
    return create(rules_path, rules);
}

void BusFixture::start_polkitd()
{
    SpawnOptions o;
    o.argv = {kPolkitd};
    o.env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address();
    o.output_file = scratch_.path("polkitd.log");
    if (polkit_namespace_) {
        std::string actions_dir = scratch_.path("polkit/actions");
        std::string rules_dir = scratch_.path("polkit/rules.d");
        o.before_exec = [actions_dir, rules_dir] { return enter_polkit_namespace(actions_dir, rules_dir); };
    }
    polkitd_ = spawn(o);
    ASSERT_TRUE(wait_for_name(kPolkitBusName, 30s))
        << "polkitd did not take " << kPolkitBusName << " on the private bus; its log:\n" << tail(polkitd_log());
}

void BusFixture::remove_host_polkit_files()
{
    for (const auto& [path, id] : host_files_created_) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0 && st.st_dev == id.first && st.st_ino == id.second)
            ::unlink(path.c_str());
    }
    host_files_created_.clear();
    polkit_lock_.reset();  // releases the flock
}

void BusFixture::TearDown()
{
    if (!scratch_.created())
        return;
    daemon_.expect_clean_stop(15s);
    if (polkitd_.pid() > 0)
        polkitd_.stop(SIGTERM, 5s);
    if (bus_.pid() > 0)
        bus_.stop(SIGTERM, 5s);
    remove_host_polkit_files();
    if (HasFailure()) {
        std::cerr << "---- bpfbrokerd log:\n" << tail(daemon_log()) << "\n";
        if (::access(scratch_.path("polkitd.log").c_str(), F_OK) == 0)
            std::cerr << "---- polkitd log:\n" << tail(polkitd_log()) << "\n";
    }
    if (had_saved_bus_address_)
        ::setenv("DBUS_SYSTEM_BUS_ADDRESS", saved_bus_address_->c_str(), 1);
    else
        ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    EXPECT_EQ(scratch_.remove(), "");
}

std::string BusFixture::daemon_log() const { return daemon_.log(); }
std::string BusFixture::polkitd_log() const { return read_text_file(scratch_.path("polkitd.log")); }

std::string raw_acquire(sdbus::IConnection& connection, const std::string& program, std::string* message,
                        AcquireReply* reply)
{
    auto proxy = sdbus::createProxy(connection, kBusName, kObjectPath);
    proxy->finishRegistration();
    return dbus_error_of(
        [&] {
            AcquireReply r;
            proxy->callMethod("AcquireProgram").onInterface(kInterface).withArguments(program)
                .storeResultsTo(std::get<0>(r), std::get<1>(r), std::get<2>(r));
            if (reply)
                *reply = std::move(r);
        },
        message);
}

std::string raw_acquire(const std::string& program, std::string* message, AcquireReply* reply)
{
    auto conn = sdbus::createSystemBusConnection();
    return raw_acquire(*conn, program, message, reply);
}

Child spawn_acquirer(uid_t uid, gid_t gid, const std::string& program)
{
    return spawn_as(uid, gid, [program](ChildChannel& parent) {
        auto conn = sdbus::createSystemBusConnection();
        parent.tell_parent(conn->getUniqueName());
        std::string message;
        AcquireReply reply;
        std::string error = raw_acquire(*conn, program, &message, &reply);
        if (!error.empty())
            return "ERROR " + error + ": " + message;
        check(std::get<0>(reply).get() >= 0, "no fd in a successful reply");
        return std::string("ok");
    });
}

std::string BusFixture::approve_as_root(const std::string& program, const ApproveOptions& options)
{
    auto client = Client::connect_dbus(10s);
    if (!client) {
        ADD_FAILURE() << "root cannot connect over D-Bus: " << client.error().describe();
        return "";
    }
    auto sha = client->approve(program, options);
    if (!sha) {
        ADD_FAILURE() << "root cannot approve " << program << " over D-Bus: " << sha.error().describe();
        return "";
    }
    return *sha;
}

std::string BusFixture::approve_for_nobody(const std::string& program)
{
    ApproveOptions who;
    who.users = {"nobody"};
    return approve_as_root(program, who);
}

std::string BusFixture::approve_for_anyone_with_polkit(const std::string& program)
{
    ApproveOptions who;
    who.anyone = true;
    who.polkit = true;
    return approve_as_root(program, who);
}

std::vector<std::string> BusFixture::audit_lines() const
{
    return test_support::read_text_lines(scratch_.path("audit.log"));
}

bool BusFixture::audited(const std::map<std::string, std::string>& fields) const
{
    return test_support::has_audit_record(test_support::read_audit_records(scratch_.path("audit.log")), fields);
}

}  // namespace bpfbroker::dbus_test