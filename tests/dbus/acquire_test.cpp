// Acquiring programs over D-Bus as an unprivileged uid: the program and map
// fds arrive as `h` values, close-on-exec, usable through the caller's own
// io_uring; refusals carry the org.bpfbroker.Broker1.Error.* names on the wire.
#include "support/bus_fixture.h"

#include <bpfbroker/error_names.h>
#include <bpfbroker/uring_attach.h>

#include <udp_stats/udp_stats.h>

#include <bpf/bpf.h>
#include <liburing.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace bpfbroker::dbus_test {
namespace {

const std::string kPermissionDenied = "org.bpfbroker.Broker1.Error.PermissionDenied";
const std::string kProgramNotFound = "org.bpfbroker.Broker1.Error.ProgramNotFound";

bool cloexec(int fd)
{
    int flags = ::fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

// A UDP socket on 127.0.0.1 with an ephemeral port and a receive timeout.
UniqueFd udp_socket(sockaddr_in& addr)
{
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    check(s.valid(), "socket: " + errno_text(errno));
    addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(::bind(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0, "bind: " + errno_text(errno));
    socklen_t len = sizeof addr;
    check(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname: " + errno_text(errno));
    timeval tv{5, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
}

using DbusAcquire = BusFixture;

// The whole path as an unprivileged user: root approves over D-Bus; uid
// 65534 acquires over D-Bus, attaches through its own ring and reads the
// counters through the read-only map fd.
TEST_F(DbusAcquire, nobody_acquires_approved_program_and_attaches_it_through_its_ring)
{
    std::string sha = approve_for_nobody("udp_stats");
    ASSERT_EQ(sha.size(), 64u) << sha;

    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus: " + (client ? std::string() : client.error().describe()));
        auto program = client->acquire("udp_stats");
        check(program.has_value(), "acquire udp_stats: " + (program ? std::string() : program.error().describe()));

        const auto& info = program->info();
        check(info.name == "udp_stats", "info.name is " + info.name);
        check(info.type == "socket_filter", "info.type is " + info.type);
        check(info.instance == "per-client", "info.instance is " + info.instance);
        check(info.id != 0, "info.id is 0");
        check(info.tag.size() == 16, "info.tag is \"" + info.tag + "\"");
        check(info.map_access.size() == 1 && info.map_access.count("stats") && info.map_access.at("stats") == "read",
              "map_access is not {stats: read}");

        check(program->fd().valid(), "no program fd");
        check(cloexec(program->fd().get()), "the program fd lacks FD_CLOEXEC");
        const UniqueFd* stats = program->map("stats");
        check(stats != nullptr && stats->valid(), "no stats map fd");
        check(cloexec(stats->get()), "the map fd lacks FD_CLOEXEC");
        check(program->maps().size() == 1, "more maps than the manifest lets a client see");

        // The kernel agrees on what the fd is.
        bpf_prog_info pinfo{};
        __u32 len = sizeof pinfo;
        check(bpf_obj_get_info_by_fd(program->fd().get(), &pinfo, &len) == 0,
              "bpf_obj_get_info_by_fd(program): " + errno_text(errno));
        check(pinfo.id == info.id, "the kernel's program id differs from info.id");
        check(pinfo.type == BPF_PROG_TYPE_SOCKET_FILTER, "not a socket filter");

        // Read-only: the broker handed out a BPF_F_RDONLY fd.
        __u32 key = 0;
        udp_stats zero{};
        check(bpf_map_update_elem(stats->get(), &key, &zero, BPF_ANY) != 0 && errno == EPERM,
              "writing the read-only map did not fail with EPERM: " + errno_text(errno));

        io_uring ring{};
        int rc = io_uring_queue_init(8, &ring, 0);
        check(rc == 0, "io_uring_queue_init: " + errno_text(-rc));
        sockaddr_in rx_addr{}, tx_addr{};
        UniqueFd rx = udp_socket(rx_addr);
        UniqueFd tx = udp_socket(tx_addr);
        auto attached = attach_via_ring(ring, rx.get(), program->fd().get(), AttachKind::SocketFilter);
        io_uring_queue_exit(&ring);
        check(attached.has_value(), "attach_via_ring (cqe res): " + (attached ? std::string() : attached.error().describe()));

        const std::size_t sizes[] = {1, 100, 1000};
        char buf[2048] = {};
        for (std::size_t n : sizes)
            check(::sendto(tx.get(), buf, n, 0, reinterpret_cast<const sockaddr*>(&rx_addr), sizeof rx_addr) ==
                      static_cast<ssize_t>(n),
                  "sendto: " + errno_text(errno));
        for (std::size_t n : sizes) {
            ssize_t got = ::recv(rx.get(), buf, sizeof buf, 0);
            check(got == static_cast<ssize_t>(n), "recv returned " + std::to_string(got) + ": " + errno_text(errno));
        }
        udp_stats totals{};
        check(bpf_map_lookup_elem(stats->get(), &key, &totals) == 0, "lookup: " + errno_text(errno));
        check(totals.packets == 3, "packets = " + std::to_string(totals.packets) + ", expected 3");
        check(totals.bytes == 1101, "bytes = " + std::to_string(totals.bytes) + ", expected 1101");
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

// The raw reply: `h` program, `a{sh}` maps, `a{sv}` info, as the XML says.
TEST_F(DbusAcquire, raw_reply_has_fd_map_fds_and_info)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        AcquireReply reply;
        std::string message;
        std::string error = raw_acquire("udp_stats", &message, &reply);
        check(error.empty(), "AcquireProgram failed: " + error + ": " + message);
        check(std::get<0>(reply).get() >= 0, "no program fd");
        check(std::get<1>(reply).size() == 1 && std::get<1>(reply).count("stats"), "maps is not {stats}");
        const auto& info = std::get<2>(reply);
        for (const char* key : {"name", "version", "type", "instance", "tag"})
            check(info.count(key) && info.at(key).containsValueOfType<std::string>(), std::string("info.") + key + " is not a string");
        check(info.count("id") && info.at("id").containsValueOfType<std::uint32_t>(), "info.id is not a u");
        check(info.count("map_access") && info.at("map_access").containsValueOfType<std::map<std::string, std::string>>(),
              "info.map_access is not a{ss}");
        check(info.at("name").get<std::string>() == "udp_stats", "info.name");
        check(info.at("version").get<std::string>() == "1.0.0", "info.version");
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

// Refusals: the exact error names on the wire, and the client's mapping.
TEST_F(DbusAcquire, unapproved_program_is_permission_denied_on_the_wire)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);

    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        std::string message;
        std::string error = raw_acquire("drop_small", &message);
        check(error == kPermissionDenied, "drop_small (never approved): got \"" + error + "\": " + message);
        check(!message.empty(), "the error has no message");
        error = raw_acquire("no_such_program", &message);
        check(error == kProgramNotFound, "no_such_program: got \"" + error + "\": " + message);

        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        auto p = client->acquire("drop_small");
        check(!p && p.error().code == ErrorCode::PermissionDenied,
              "Client::acquire(drop_small) did not map to PermissionDenied");
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();

    // Approved for nobody only: another unprivileged uid is refused.
    auto other = run_as(kOtherUid, kOtherGid, [] {
        std::string message;
        std::string error = raw_acquire("udp_stats", &message);
        check(error == kPermissionDenied, "uid " + std::to_string(kOtherUid) + ", udp_stats: got \"" + error + "\": " + message);
        return std::string("ok");
    });
    EXPECT_TRUE(other.ok()) << other.describe();

    // Every decision is audited with the uid the bus recorded.
    EXPECT_TRUE(audited({{"action", "acquire"}, {"transport", "dbus"}, {"program", "drop_small"}, {"uid", "65534"},
                         {"decision", "deny"}, {"code", "PermissionDenied"}}))
        << "no audit record of the refused drop_small request; audit log:\n" << read_text_file(scratch() + "/audit.log");
}

// Client::acquire(name, options) calls AcquireProgramWithOptions: a daemon
// without it is a clear Unsupported, one with it hands the program out.
TEST_F(DbusAcquire, acquire_with_options_is_unsupported_or_served_as_introspected)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);
    auto conn = sdbus::createSystemBusConnection();
    auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
    proxy->finishRegistration();
    std::string xml;
    proxy->callMethod("Introspect").onInterface("org.freedesktop.DBus.Introspectable").storeResultsTo(xml);
    bool offered = xml.find("AcquireProgramWithOptions") != std::string::npos;

    auto result = run_as(kNobodyUid, kNobodyGid, [offered] {
        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        auto p = client->acquire("udp_stats", AcquireOptions{});
        if (offered)
            check(p.has_value() && p->fd().valid(), "AcquireProgramWithOptions(udp_stats) gave no program");
        else
            check(!p && p.error().code == ErrorCode::Unsupported &&
                      p.error().message.find("does not offer") != std::string::npos,
                  "a daemon without AcquireProgramWithOptions: " + (p ? std::string("served") : p.error().describe()));
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

// ListPrograms as uid 65534 says what that uid may acquire.
TEST_F(DbusAcquire, list_programs_reflects_the_callers_grants)
{
    ASSERT_EQ(approve_for_nobody("udp_stats").size(), 64u);
    auto result = run_as(kNobodyUid, kNobodyGid, [] {
        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        auto list = client->list_programs();
        check(list.has_value(), "list_programs: " + (list ? std::string() : list.error().describe()));
        bool saw_udp = false, saw_drop = false;
        for (const auto& e : *list) {
            if (e.name == "udp_stats") {
                saw_udp = true;
                check(e.allowed, "udp_stats is not allowed for nobody: " + e.reason);
                check(e.state == "valid", "udp_stats state " + e.state);
            } else if (e.name == "drop_small") {
                saw_drop = true;
                check(!e.allowed, "drop_small is allowed for nobody");
                check(e.error == "PermissionDenied", "drop_small error is " + e.error);
            }
        }
        check(saw_udp && saw_drop, "udp_stats or drop_small missing from the list");
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

// A grant that needs polkit is reported as such over both transports, and
// each says what the caller would get there: the socket cannot ask polkit
// (not allowed there), D-Bus can (allowed, pending polkit's answer).
TEST_F(DbusAcquire, list_programs_says_when_polkit_is_needed_on_each_transport)
{
    ASSERT_EQ(approve_for_anyone_with_polkit("udp_stats").size(), 64u);
    const std::string socket = root() + "/run/bpfbroker/org.bpfbroker.Broker";
    auto result = run_as(kNobodyUid, kNobodyGid, [socket] {
        auto find = [](const std::vector<ProgramEntry>& list) {
            for (const auto& e : list)
                if (e.name == "udp_stats")
                    return e;
            throw ChildFailure("udp_stats is not listed");
        };
        auto over_socket = Client::connect_socket(socket, 10s);
        check(over_socket.has_value(), "connect_socket: " + (over_socket ? std::string() : over_socket.error().describe()));
        auto socket_list = over_socket->list_programs();
        check(socket_list.has_value(), "list over the socket");
        auto via_socket = find(*socket_list);
        check(via_socket.needs_polkit, "the socket does not say udp_stats needs polkit");
        check(!via_socket.allowed, "the socket says udp_stats is allowed, but it never asks polkit");

        auto over_bus = Client::connect_dbus(10s);
        check(over_bus.has_value(), "connect_dbus");
        auto bus_list = over_bus->list_programs();
        check(bus_list.has_value(), "list over D-Bus");
        auto via_bus = find(*bus_list);
        check(via_bus.allowed, "over D-Bus, where polkit can be asked, udp_stats is not allowed");
        check(via_bus.needs_polkit,
              "over D-Bus, ListPrograms says udp_stats is allowed without saying it needs polkit "
              "(the socket says needs_polkit=true)");
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

// Group grants over D-Bus: the daemon takes the caller's groups from the
// user database (the bus records only the uid): nobody is in nogroup.
TEST_F(DbusAcquire, group_grant_applies_over_dbus)
{
    const group* gr = ::getgrgid(kNobodyGid);
    if (!gr)
        GTEST_SKIP() << "gid " << kNobodyGid << " has no name";
    ApproveOptions who;
    who.groups = {gr->gr_name};
    ASSERT_EQ(approve_as_root("udp_stats", who).size(), 64u);
    auto member = run_as(kNobodyUid, kNobodyGid, [] {
        auto client = Client::connect_dbus(10s);
        check(client.has_value(), "connect_dbus");
        auto p = client->acquire("udp_stats");
        check(p.has_value(), "acquire by a member of the granted group: " + (p ? std::string() : p.error().describe()));
        return std::string("ok");
    });
    EXPECT_TRUE(member.ok()) << member.describe();
    auto outsider = run_as(kOtherUid, kOtherGid, [] {
        std::string message;
        std::string error = raw_acquire("udp_stats", &message);
        check(error == kPermissionDenied, "a non-member got \"" + error + "\": " + message);
        return std::string("ok");
    });
    EXPECT_TRUE(outsider.ok()) << outsider.describe();
}

// The identity is the euid the bus recorded at connect, not the real uid in
// /proc: a process with real uid 0 and effective uid 65534 is not an admin.
TEST_F(DbusAcquire, caller_is_the_euid_recorded_at_connect)
{
    auto result = run_as(0, 0, [] {
        check(::setresuid(0, kNobodyUid, 0) == 0, "setresuid(0, 65534, 0): " + errno_text(errno));
        auto conn = sdbus::createSystemBusConnection();
        auto proxy = sdbus::createProxy(*conn, kBusName, kObjectPath);
        proxy->finishRegistration();
        std::string message;
        std::string error = dbus_error_of(
            [&] {
                std::string sha;
                proxy->callMethod("Approve").onInterface(kInterface)
                    .withArguments(std::string("udp_stats"), std::vector<std::string>{"nobody"}, std::vector<std::string>{},
                                   false, false)
                    .storeResultsTo(sha);
            },
            &message);
        check(error == kPermissionDenied,
              "Approve from real uid 0 / effective uid 65534 was not refused: \"" + error + "\" " + message);
        return std::string("ok");
    });
    EXPECT_TRUE(result.ok()) << result.describe();
}

}  // namespace
}  // namespace bpfbroker::dbus_test
