// The approvals store; see approvals_store.h.
#include "policy/approvals_store.h"

#include "policy/paths.h"
#include "base/strict_json.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>

namespace bpfbroker::policy {

namespace {

constexpr std::string_view kTempPrefix = ".approvals.json.";

template <typename T>
void merge_unique(std::vector<T>& into, const std::vector<T>& from)
{
    for (const auto& x : from)
        if (std::find(into.begin(), into.end(), x) == into.end())
            into.push_back(x);
}

Result<void> write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail(make_system_error("cannot write approvals", errno));
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

// Opens var/lib/bpfbroker, creating missing components (0755, as the
// daemon's StateDirectory would) when `create` is set.
Result<UniqueFd> open_state_dir(int rootfd, const FileTrust& trust, bool create)
{
    auto dir = open_trusted_dir(rootfd, paths::kStateDir, trust);
    if (dir || !create || dir.error().sys_errno != ENOENT)
        return dir;
    UniqueFd parent = UniqueFd::dup_cloexec(rootfd);
    std::string_view rest = paths::kStateDir;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        std::string part(rest.substr(0, slash));
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (::mkdirat(parent.get(), part.c_str(), 0755) != 0 && errno != EEXIST)
            return fail(make_system_error("cannot create " + part, errno));
        auto next = open_trusted_dir(parent.get(), part, trust);
        if (!next)
            return next;
        parent = std::move(*next);
    }
    return parent;
}

void remove_stale_temporaries(int dirfd)
{
    auto names = list_directory(dirfd, 4096);
    if (!names)
        return;
    for (const auto& n : *names)
        if (n.rfind(kTempPrefix, 0) == 0)
            ::unlinkat(dirfd, n.c_str(), 0);
}

}  // namespace

void Approvals::approve(Grant grant)
{
    revoked_programs.erase(std::remove(revoked_programs.begin(), revoked_programs.end(), grant.program),
                           revoked_programs.end());
    for (auto& g : approvals) {
        if (g.program == grant.program && g.match == grant.match && g.match_value == grant.match_value &&
            g.polkit == grant.polkit) {
            merge_unique(g.principals.user_names, grant.principals.user_names);
            merge_unique(g.principals.uids, grant.principals.uids);
            merge_unique(g.principals.group_names, grant.principals.group_names);
            merge_unique(g.principals.gids, grant.principals.gids);
            g.principals.anyone = g.principals.anyone || grant.principals.anyone;
            return;
        }
    }
    approvals.push_back(std::move(grant));
}

std::size_t Approvals::revoke(const std::string& program)
{
    auto before = approvals.size();
    approvals.erase(std::remove_if(approvals.begin(), approvals.end(),
                                   [&](const Grant& g) { return g.program == program; }),
                    approvals.end());
    if (std::find(revoked_programs.begin(), revoked_programs.end(), program) == revoked_programs.end())
        revoked_programs.push_back(program);
    return before - approvals.size();
}

Result<Approvals> parse_approvals(std::string_view bytes)
{
    const std::string source = std::string(paths::kStateDir) + "/" + std::string(paths::kApprovalsFile);
    auto doc = parse_strict_json(bytes, ErrorCode::GrantInvalid);
    if (!doc) {
        auto err = std::move(doc).error();
        err.message = source + ": " + err.message;
        return fail(std::move(err));
    }
    Approvals out;
    try {
        JsonObjectReader r(*doc, "$");
        r.required_int("schema", 1, 1);
        const auto& list = json_as_array(r.required("approvals"), r.path_of("approvals"), kMaxGrantsPerFile);
        for (std::size_t i = 0; i < list.size(); ++i)
            out.approvals.push_back(
                parse_grant_json(list[i], r.path_of("approvals") + "[" + std::to_string(i) + "]", source));
        const auto& revs = json_as_array(r.required("revocations"), r.path_of("revocations"), kMaxGrantsPerFile);
        for (std::size_t i = 0; i < revs.size(); ++i) {
            JsonObjectReader rev(revs[i], r.path_of("revocations") + "[" + std::to_string(i) + "]");
            auto program = rev.required_string("program", 64);
            if (!is_valid_program_name(program))
                rev.violation("program", "not a valid program name");
            rev.reject_unknown();
            out.revoked_programs.push_back(std::move(program));
        }
        r.reject_unknown();
    } catch (const SchemaViolation& v) {
        return fail(ErrorCode::GrantInvalid, source + ": " + v.path + ": " + v.reason);
    }
    return out;
}

std::string serialize_approvals(const Approvals& a)
{
    nlohmann::json approvals = nlohmann::json::array();
    for (const auto& g : a.approvals)
        approvals.push_back(grant_to_json(g));
    nlohmann::json revocations = nlohmann::json::array();
    for (const auto& p : a.revoked_programs)
        revocations.push_back({{"program", p}});
    nlohmann::json doc = {{"schema", 1}, {"approvals", approvals}, {"revocations", revocations}};
    return doc.dump(2) + "\n";
}

Result<Approvals> ApprovalsStore::read(int rootfd, const FileTrust& trust)
{
    auto dir = open_state_dir(rootfd, trust, false);
    if (!dir) {
        if (dir.error().sys_errno == ENOENT)
            return Approvals{};
        return fail(std::move(dir).error());
    }
    auto bytes = read_trusted_file(dir->get(), paths::kApprovalsFile, kMaxGrantFileBytes, trust);
    if (!bytes) {
        if (bytes.error().sys_errno == ENOENT)
            return Approvals{};
        return fail(std::move(bytes).error());
    }
    return parse_approvals(*bytes);
}

Result<Approvals> ApprovalsStore::update(int rootfd, const FileTrust& trust,
                                         const std::function<Result<void>(Approvals&)>& change)
{
    auto dir = open_state_dir(rootfd, trust, true);
    if (!dir)
        return fail(std::move(dir).error());
    // The lock serializes the daemon and offline CLI writers; it dies with
    // its holder, so a killed writer never leaves the store locked.
    if (::flock(dir->get(), LOCK_EX) != 0)
        return fail(make_system_error("cannot lock the state directory", errno));
    remove_stale_temporaries(dir->get());

    auto current = read(rootfd, trust);
    if (!current)
        return current;
    auto changed = change(*current);
    if (!changed)
        return fail(std::move(changed).error());
    auto text = serialize_approvals(*current);
    // Never write a store that read() would refuse: that would fail closed
    // and drop every grant, allow-lists included.
    if (text.size() > kMaxGrantFileBytes)
        return fail(ErrorCode::LimitExceeded, "the approvals store would grow past " +
                                                  std::to_string(kMaxGrantFileBytes) + " bytes; revoke unused approvals first");
    if (auto check = parse_approvals(text); !check)
        return fail(ErrorCode::LimitExceeded, "the change would make the approvals store unreadable: " + check.error().message);

    std::random_device rd;
    std::string temp = std::string(kTempPrefix) + std::to_string(::getpid()) + "." + std::to_string(rd());
    UniqueFd fd(::openat(dir->get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd)
        return fail(make_system_error("cannot create " + temp, errno));
    auto cleanup_on_error = [&](Error err) {
        ::unlinkat(dir->get(), temp.c_str(), 0);
        return fail(std::move(err));
    };
    // The umask may have narrowed the mode; the store must be readable (0644)
    // and never group/other-writable.
    if (::fchmod(fd.get(), 0644) != 0)
        return cleanup_on_error(make_system_error("cannot chmod " + temp, errno));
    if (auto w = write_all(fd.get(), text); !w)
        return cleanup_on_error(std::move(w).error());
    if (::fsync(fd.get()) != 0)
        return cleanup_on_error(make_system_error("cannot fsync " + temp, errno));
    fd.reset();
    if (::renameat(dir->get(), temp.c_str(), dir->get(), std::string(paths::kApprovalsFile).c_str()) != 0)
        return cleanup_on_error(make_system_error("cannot replace approvals.json", errno));
    if (::fsync(dir->get()) != 0)
        return fail(make_system_error("cannot fsync the state directory", errno));
    return current;
}

}  // namespace bpfbroker::policy
