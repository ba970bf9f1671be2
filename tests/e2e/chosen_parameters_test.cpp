// Caller-chosen parameters end to end (issue 9), on drop_small, a shared
// socket filter whose minimum payload length is a `choice` (u32, 0..65535,
// default 8): uid-65534 callers over the socket choose it in the request;
// a choice outside its bounds is InvalidParameter naming it; callers that
// choose the same value (the default included, chosen or not) share one
// instance, callers that choose differently get their own, and the chosen
// value is what the kernel runs and what the audit record names.
#include "support/approved_for_nobody.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <string>

namespace bpfbroker::e2e {
namespace {

constexpr const char* kProgram = "drop_small";
constexpr const char* kParameter = "min_payload_len";

class ChosenParametersTest : public ApprovedForNobodyFixture {
protected:
    std::vector<std::string> programs_for_nobody() const override { return {kProgram}; }
};

AcquireOptions choosing(std::uint64_t min_payload_len)
{
    return AcquireOptions{{{kParameter, min_payload_len}}};
}

// Which of `sizes` (payload bytes, in order) arrive on a loopback UDP socket
// with `program_fd` attached, as "N,N,...".
std::string sizes_that_pass(int program_fd, std::initializer_list<std::size_t> sizes)
{
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    require(sock.valid(), "socket: " + errno_text(errno));
    require(::setsockopt(sock.get(), SOL_SOCKET, SO_ATTACH_BPF, &program_fd, sizeof program_fd) == 0,
            "SO_ATTACH_BPF: " + errno_text(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    require(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                ::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0,
            "bind: " + errno_text(errno));
    const std::string payload(2000, 'x');
    for (std::size_t size : sizes)
        require(::sendto(sock.get(), payload.data(), size, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
                    static_cast<ssize_t>(size),
                "sendto: " + errno_text(errno));
    // Loopback delivery is synchronous: what passed is queued by now.
    std::string out;
    char buf[2048];
    for (ssize_t got; (got = ::recv(sock.get(), buf, sizeof buf, MSG_DONTWAIT)) >= 0;)
        out += (out.empty() ? "" : ",") + std::to_string(got);
    return out;
}

// One uid-65534 caller (its own process and connection): acquires with
// `options` and reports the program id, or the error's code name and message.
std::string acquire_and_report(const std::string& socket, const AcquireOptions& options)
{
    auto r = run_as_nobody([&] {
        auto client = Client::connect_socket(socket, 10s);
        require(bool(client), "connect: " + (client ? "" : client.error().describe()));
        auto p = client->acquire(kProgram, options);
        if (!p)
            return std::string(error_code_name(p.error().code)) + ": " + p.error().message;
        return "id " + std::to_string(p->info().id);
    });
    return r.ok() ? r.report : "child failed: " + r.describe();
}

TEST_F(ChosenParametersTest, AChoiceOutsideItsBoundsIsInvalidParameterNamingIt)
{
    const std::string above = acquire_and_report(socket_path(), choosing(65536));
    EXPECT_TRUE(above.starts_with("InvalidParameter: ")) << above;
    EXPECT_NE(above.find(kParameter), std::string::npos) << above;
    EXPECT_NE(above.find("outside [0, 65535]"), std::string::npos) << above;

    const std::string unknown = acquire_and_report(socket_path(), AcquireOptions{{{"max_payload_len", 1}}});
    EXPECT_TRUE(unknown.starts_with("InvalidParameter: ")) << unknown;
    EXPECT_NE(unknown.find("max_payload_len"), std::string::npos) << unknown;

    // The daemon serves on, and the bounds themselves are valid choices.
    EXPECT_TRUE(acquire_and_report(socket_path(), choosing(65535)).starts_with("id ")) << "65535 is within bounds";
    EXPECT_TRUE(acquire_and_report(socket_path(), choosing(0)).starts_with("id ")) << "0 is within bounds";
}

TEST_F(ChosenParametersTest, EqualChoicesShareOneInstanceDifferentChoicesDoNot)
{
    const std::string s = socket_path();
    const std::string first_100 = acquire_and_report(s, choosing(100));
    const std::string second_100 = acquire_and_report(s, choosing(100));
    const std::string chose_200 = acquire_and_report(s, choosing(200));
    const std::string chose_nothing = acquire_and_report(s, {});
    const std::string chose_default = acquire_and_report(s, choosing(8));
    for (const auto* r : {&first_100, &second_100, &chose_200, &chose_nothing, &chose_default})
        ASSERT_TRUE(r->starts_with("id ")) << *r;

    EXPECT_EQ(first_100, second_100) << "two callers choosing 100 got different instances";
    EXPECT_NE(first_100, chose_200) << "choosing 100 and 200 gave one instance";
    EXPECT_EQ(chose_nothing, chose_default) << "the default, chosen or not, is one value";
    EXPECT_NE(chose_nothing, first_100);
    EXPECT_NE(chose_nothing, chose_200);

    // Each hand-out's audit record names the value it was loaded with.
    std::map<std::string, int> audited;
    for (const auto& rec : audit_records())
        if (rec.count("program") && rec.at("program") == kProgram && rec.count("reason") && rec.at("decision") == "allow")
            for (const char* value : {" min_payload_len=100", " min_payload_len=200", " min_payload_len=8"})
                audited[value] += rec.at("reason").ends_with(value);
    EXPECT_EQ(audited[" min_payload_len=100"], 2);
    EXPECT_EQ(audited[" min_payload_len=200"], 1);
    EXPECT_EQ(audited[" min_payload_len=8"], 2);
}

// The shared instance of a choice is loaded with that value in .rodata: a
// caller's datagrams are judged by the minimum it chose.
TEST_F(ChosenParametersTest, TheKernelRunsTheChosenMinimum)
{
    const std::string socket = socket_path();
    auto r = run_as_nobody([&] {
        auto client = Client::connect_socket(socket, 10s);
        require(bool(client), "connect");
        auto at_100 = client->acquire(kProgram, choosing(100));
        require(bool(at_100), "acquire at 100: " + (at_100 ? "" : at_100.error().describe()));
        auto by_default = client->acquire(kProgram, {});
        require(bool(by_default), "acquire by default: " + (by_default ? "" : by_default.error().describe()));
        return sizes_that_pass(at_100->fd().get(), {7, 8, 99, 100, 500}) + " / " +
               sizes_that_pass(by_default->fd().get(), {7, 8, 99, 100, 500});
    });
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.report, "100,500 / 8,99,100,500");
}

}  // namespace
}  // namespace bpfbroker::e2e
