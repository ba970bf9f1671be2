// Output and file helpers for bpfbrokerctl; see output.h.
#include "output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpfbroker/unique_fd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

namespace bpfbroker::ctl {

void print_json(const nlohmann::json& doc)
{
    std::cout << doc.dump(2) << '\n';
}

namespace {
const bool* errors_as_json = nullptr;
}  // namespace

void report_errors_as_json_when(const bool& json)
{
    errors_as_json = &json;
}

int report_error(const Error& error, int exit_code)
{
    if (errors_as_json && *errors_as_json) {
        auto j = error_to_json(error);
        if (!error.detail.empty())
            j["detail"] = error.detail;
        std::cerr << j.dump() << '\n';
        return exit_code;
    }
    std::cerr << "bpfbrokerctl: " << error.describe() << '\n';
    if (!error.detail.empty())
        std::cerr << error.detail << (error.detail.back() == '\n' ? "" : "\n");
    return exit_code;
}

int report_error(std::string_view message, int exit_code)
{
    auto code = exit_code == kExitUsage ? ErrorCode::InvalidParameter : ErrorCode::SystemError;
    return report_error(make_error(code, std::string(message)), exit_code);
}

nlohmann::json error_to_json(const Error& error)
{
    nlohmann::json j = {{"error", error_code_name(error.code)}, {"message", error.message}};
    if (error.sys_errno)
        j["errno"] = error.sys_errno;
    return j;
}

bool read_file(const std::string& path, std::string& out, std::string& why)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        why = "cannot open " + path + ": " + std::strerror(errno);
        return false;
    }
    out.clear();
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            why = "cannot read " + path + ": " + std::strerror(errno);
            return false;
        }
        if (n == 0)
            return true;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > (64u << 20)) {
            why = path + " is larger than 64 MiB";
            return false;
        }
    }
}

bool write_file(const std::string& path, std::string_view data, unsigned mode, bool replace, std::string& why)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (replace ? O_TRUNC : O_EXCL);
    UniqueFd fd(::open(path.c_str(), flags, mode));
    if (!fd) {
        why = "cannot create " + path + ": " + std::strerror(errno) +
              (errno == EEXIST ? " (use --force to replace it)" : "");
        return false;
    }
    if (::fchmod(fd.get(), mode) != 0) {
        why = "cannot set the mode of " + path + ": " + std::strerror(errno);
        return false;
    }
    while (!data.empty()) {
        ssize_t n = ::write(fd.get(), data.data(), data.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            why = "cannot write " + path + ": " + std::strerror(errno);
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    if (::fsync(fd.get()) != 0) {
        why = "cannot fsync " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace bpfbroker::ctl
