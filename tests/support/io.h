// The small POSIX helpers the rest of tests/support (and both end-to-end
// suites) build on: errno as text, deadlines, whole writes, line reads with
// a deadline, and whole-file reads and writes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::test_support {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// "EPERM (Operation not permitted)" style text for reports.
std::string errno_text(int err);

// Milliseconds left until `deadline` (0 once it has passed), for poll().
int remaining_ms(Clock::time_point deadline);

// Waits for `events` on fd until the deadline: >0 ready, 0 timeout, <0 error.
int poll_until(int fd, short events, Clock::time_point deadline);

// Writes every byte (retrying EINTR); gives up silently on any other error.
void write_all(int fd, std::string_view bytes);

// Reads one line (without its newline) from fd into/through `buffered`;
// nullopt on EOF, error or the deadline. A deadline already past means "only
// what is there now".
std::optional<std::string> read_line(int fd, std::string& buffered, Clock::time_point deadline);

// The whole file, or "" when it cannot be read.
std::string read_text_file(const std::string& path);
// The file's lines without their newlines (none when it cannot be read).
std::vector<std::string> read_text_lines(const std::string& path);

// Creates or truncates `path` (never through a symlink) with `mode`; false
// (errno kept) when it cannot.
bool write_text_file(const std::string& path, std::string_view content, mode_t mode);

// The last `max_bytes` of `text`, marked as cut when it was, for failure output.
std::string tail(const std::string& text, std::size_t max_bytes = 6000);

}  // namespace bpfbroker::test_support
