// Trusted opening and reading of policy files; see secure_file.h.
#include "policy/secure_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace bpfbroker::policy {

namespace {

std::string mode_string(mode_t mode)
{
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
    return buf;
}

bool is_single_component(std::string_view name)
{
    return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

Result<UniqueFd> open_dir_component(int dirfd, const std::string& name, const FileTrust& trust,
                                    const std::string& shown_path)
{
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        int err = errno;
        if (err == ELOOP || err == ENOTDIR) {
            struct stat st {};
            if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                return fail(ErrorCode::UnsafeFile, shown_path + " is a symbolic link; refused");
            return fail(ErrorCode::UnsafeFile, shown_path + " is not a directory");
        }
        return fail(make_system_error("cannot open directory " + shown_path, err));
    }
    auto ok = check_trusted_fd(fd.get(), true, trust, shown_path);
    if (!ok)
        return fail(std::move(ok).error());
    return fd;
}

}  // namespace

Result<void> check_trusted_fd(int fd, bool want_dir, const FileTrust& trust, std::string_view what)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return fail(make_system_error("cannot stat " + std::string(what), errno));
    if (want_dir && !S_ISDIR(st.st_mode))
        return fail(ErrorCode::UnsafeFile, std::string(what) + " is not a directory");
    if (!want_dir && !S_ISREG(st.st_mode))
        return fail(ErrorCode::UnsafeFile, std::string(what) + " is not a regular file");
    if (st.st_uid != trust.owner)
        return fail(ErrorCode::UnsafeFile, std::string(what) + " is owned by uid " +
                                               std::to_string(st.st_uid) + ", not uid " +
                                               std::to_string(trust.owner));
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return fail(ErrorCode::UnsafeFile, std::string(what) + " is writable by group or others (mode " +
                                               mode_string(st.st_mode) + ")");
    return {};
}

Result<UniqueFd> open_trusted_root(const std::string& path, const FileTrust& trust)
{
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd)
        return fail(make_system_error("cannot open root directory " + path, errno));
    auto ok = check_trusted_fd(fd.get(), true, trust, path);
    if (!ok)
        return fail(std::move(ok).error());
    return fd;
}

Result<UniqueFd> open_trusted_dir(int dirfd, std::string_view relpath, const FileTrust& trust)
{
    if (relpath.empty() || relpath.front() == '/')
        return fail(ErrorCode::InvalidParameter, "policy path must be relative: " + std::string(relpath));
    UniqueFd current;
    int at = dirfd;
    std::string shown;
    std::size_t pos = 0;
    while (pos <= relpath.size()) {
        auto slash = relpath.find('/', pos);
        auto part = relpath.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
        if (!is_single_component(part))
            return fail(ErrorCode::InvalidParameter, "bad policy path component in " + std::string(relpath));
        shown += shown.empty() ? "" : "/";
        shown += part;
        auto next = open_dir_component(at, std::string(part), trust, shown);
        if (!next) {
            auto err = std::move(next).error();
            return fail(std::move(err));
        }
        current = std::move(*next);
        at = current.get();
        if (slash == std::string_view::npos)
            break;
        pos = slash + 1;
    }
    return current;
}

Result<std::string> read_trusted_file(int dirfd, std::string_view name, std::size_t max_size,
                                      const FileTrust& trust)
{
    if (!is_single_component(name))
        return fail(ErrorCode::InvalidParameter, "bad file name " + std::string(name));
    std::string shown(name);
    // O_NONBLOCK: a FIFO planted in a policy directory must not hang the
    // daemon in open(); the type check below then refuses it.
    UniqueFd fd(::openat(dirfd, shown.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) {
        int err = errno;
        if (err == ELOOP)
            return fail(ErrorCode::UnsafeFile, shown + " is a symbolic link; refused");
        return fail(make_system_error("cannot open " + shown, err));
    }
    auto ok = check_trusted_fd(fd.get(), false, trust, shown);
    if (!ok)
        return fail(std::move(ok).error());
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return fail(make_system_error("cannot stat " + shown, errno));
    if (static_cast<std::size_t>(st.st_size) > max_size)
        return fail(ErrorCode::LimitExceeded, shown + " is " + std::to_string(st.st_size) +
                                                  " bytes, more than the limit of " + std::to_string(max_size));
    std::string data;
    data.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    // Read one byte past the size we saw, so a file that grew meanwhile is
    // noticed instead of silently cut.
    for (;;) {
        if (got == data.size())
            data.resize(got + 1);
        ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(make_system_error("cannot read " + shown, errno));
        }
        if (n == 0)
            break;
        got += static_cast<std::size_t>(n);
        if (got > max_size)
            return fail(ErrorCode::LimitExceeded, shown + " grew past the limit of " + std::to_string(max_size) + " bytes while being read");
    }
    data.resize(got);
    return data;
}

Result<DirectoryListing> list_first_names(int dirfd, std::size_t keep)
{
    // fdopendir takes ownership, so give it a duplicate positioned at the start.
    UniqueFd dup = UniqueFd::dup_cloexec(dirfd);
    if (!dup)
        return fail(make_system_error("cannot duplicate directory fd", errno));
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(dup.get()), ::closedir);
    if (!dir)
        return fail(make_system_error("cannot list directory", errno));
    (void)dup.release();
    ::rewinddir(dir.get());
    // A max-heap of the `keep` smallest names seen so far.
    DirectoryListing out;
    auto& names = out.names;
    errno = 0;
    while (auto* ent = ::readdir(dir.get())) {
        std::string_view n = ent->d_name;
        if (n == "." || n == "..")
            continue;
        ++out.total;
        if (names.size() < keep) {
            names.emplace_back(n);
            std::push_heap(names.begin(), names.end());
        } else if (keep > 0 && n < names.front()) {
            std::pop_heap(names.begin(), names.end());
            names.back() = n;
            std::push_heap(names.begin(), names.end());
        }
    }
    if (errno != 0)
        return fail(make_system_error("cannot read directory", errno));
    std::sort_heap(names.begin(), names.end());
    return out;
}

Result<std::vector<std::string>> list_directory(int dirfd, std::size_t max_entries)
{
    auto listing = list_first_names(dirfd, max_entries);
    if (!listing)
        return fail(std::move(listing).error());
    if (listing->total > max_entries)
        return fail(ErrorCode::LimitExceeded, "directory has more than " + std::to_string(max_entries) + " entries");
    return std::move(listing->names);
}

bool is_dev_null_mask(int dirfd, std::string_view name)
{
    std::string n(name);
    struct stat st {};
    if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(st.st_mode))
        return false;
    char target[32];
    ssize_t len = ::readlinkat(dirfd, n.c_str(), target, sizeof target);
    return len == 9 && std::string_view(target, 9) == "/dev/null";
}

}  // namespace bpfbroker::policy
