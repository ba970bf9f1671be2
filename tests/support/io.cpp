// Small POSIX helpers; see io.h.
#include "io.h"

#include <bpfbroker/unique_fd.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace bpfbroker::test_support {

std::string errno_text(int err)
{
    const char* name = strerrorname_np(err);
    return std::string(name ? name : std::to_string(err).c_str()) + " (" + std::strerror(err) + ")";
}

int remaining_ms(Clock::time_point deadline)
{
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

int poll_until(int fd, short events, Clock::time_point deadline)
{
    for (;;) {
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, remaining_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

void write_all(int fd, std::string_view bytes)
{
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::optional<std::string> read_line(int fd, std::string& buffered, Clock::time_point deadline)
{
    for (;;) {
        if (auto nl = buffered.find('\n'); nl != std::string::npos) {
            std::string line = buffered.substr(0, nl);
            buffered.erase(0, nl + 1);
            return line;
        }
        if (poll_until(fd, POLLIN, deadline) <= 0)
            return std::nullopt;
        char buf[512];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return std::nullopt;
        buffered.append(buf, static_cast<std::size_t>(n));
    }
}

std::string read_text_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> read_text_lines(const std::string& path)
{
    std::vector<std::string> out;
    std::stringstream ss(read_text_file(path));
    for (std::string line; std::getline(ss, line);)
        out.push_back(line);
    return out;
}

bool write_text_file(const std::string& path, std::string_view content, mode_t mode)
{
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd)
        return false;
    write_all(fd.get(), content);
    return ::fchmod(fd.get(), mode) == 0;
}

std::string tail(const std::string& text, std::size_t max_bytes)
{
    return text.size() <= max_bytes ? text : "[...]\n" + text.substr(text.size() - max_bytes);
}

}  // namespace bpfbroker::test_support
