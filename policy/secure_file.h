// Opening policy files without trusting the file system: every directory and
// file is opened relative to an already-opened directory, with O_NOFOLLOW, and
// checked to be of the right kind, owned by the trusted owner and not writable
// by group or others. A file is read once into memory; callers verify and use
// those bytes, never the path again, so nothing can change between the two.
#pragma once

#include <bpfbroker/result.h>
#include <bpfbroker/unique_fd.h>

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::policy {

struct FileTrust {
    // Who must own policy files and directories: root on a real system. Tests
    // that run without root set this to their own euid.
    uid_t owner = 0;
};

// Opens `relpath` ("a/b/c", no "..", no leading '/') below `dirfd` one
// component at a time, checking each directory. ENOENT is reported as a
// SystemError with sys_errno == ENOENT so callers can treat absence as empty.
Result<UniqueFd> open_trusted_dir(int dirfd, std::string_view relpath, const FileTrust& trust);

// Opens the root itself (an absolute or relative path) and checks it.
Result<UniqueFd> open_trusted_root(const std::string& path, const FileTrust& trust);

// Reads a whole regular file named `name` (one component) in `dirfd`.
// Refuses links, non-regular files, bad owner or mode, and files over
// max_size (UnsafeFile / LimitExceeded).
Result<std::string> read_trusted_file(int dirfd, std::string_view name, std::size_t max_size,
                                      const FileTrust& trust);

// Checks an opened fd is what a policy path must be: `want_dir` says which kind.
Result<void> check_trusted_fd(int fd, bool want_dir, const FileTrust& trust, std::string_view what);

// Names in a directory, sorted, without "." and "..". At most max_entries.
Result<std::vector<std::string>> list_directory(int dirfd, std::size_t max_entries);

// The `keep` first names of a directory in name order, sorted, and how many
// names it has in all: memory stays bounded however large the directory is,
// and which names are kept does not depend on the order readdir gives.
struct DirectoryListing {
    std::vector<std::string> names;
    std::size_t total = 0;
};
Result<DirectoryListing> list_first_names(int dirfd, std::size_t keep);

// True when `name` in dirfd is a symbolic link to /dev/null: the convention by
// which an /etc entry masks (revokes) a vendor entry of the same name.
bool is_dev_null_mask(int dirfd, std::string_view name);

}  // namespace bpfbroker::policy
