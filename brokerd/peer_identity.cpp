// Peer identity from the transport; see peer_identity.h.
#include "brokerd/peer_identity.h"

#include "brokerd/limits.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <cerrno>

namespace bpfbroker::brokerd {

namespace {

// Answers of the user database by id for a few seconds: an
// administrator's change applies within kTtl, and a flood of requests from
// one uid makes one lookup, not one each.
template <typename Value>
class TtlCache {
public:
    using Lookup = Value (*)(std::uint32_t);
    static constexpr auto kTtl = std::chrono::seconds(10);
    static constexpr std::size_t kMaxEntries = Limits::kCachedNames;

    Value get(std::uint32_t id, Lookup lookup)
    {
        if (auto cached = find(id))
            return std::move(*cached);
        auto value = lookup(id);  // outside the lock: NSS may be slow
        auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex_);
        if (entries_.size() >= kMaxEntries)
            entries_.clear();
        entries_[id] = {value, now};
        return value;
    }

    // The cached answer while it is fresh; never calls the user database.
    std::optional<Value> find(std::uint32_t id)
    {
        auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex_);
        if (auto it = entries_.find(id); it != entries_.end() && now - it->second.at < kTtl)
            return it->second.value;
        return std::nullopt;
    }

private:
    struct Entry {
        Value value;
        std::chrono::steady_clock::time_point at;
    };
    std::mutex mutex_;
    std::unordered_map<std::uint32_t, Entry> entries_;
};

std::string lookup_user_name(std::uint32_t uid)
{
    std::vector<char> buf(4096);
    struct passwd pw {};
    struct passwd* out = nullptr;
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out)
        return out->pw_name;
    return {};
}

std::string lookup_group_name(std::uint32_t gid)
{
    std::vector<char> buf(16384);
    struct group gr {};
    struct group* out = nullptr;
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &out) == 0 && out)
        return out->gr_name;
    return {};
}

TtlCache<std::string> g_user_names;
TtlCache<std::string> g_group_names;

std::string user_name(uid_t uid)
{
    return g_user_names.get(uid, lookup_user_name);
}

std::string group_name(gid_t gid)
{
    return g_group_names.get(gid, lookup_group_name);
}

}  // namespace

namespace {

// Fills peer's names through `name_of` (user) and `group_of`; false as soon
// as one of them has no answer.
template <typename UserName, typename GroupName>
bool fill_names(policy::Peer& peer, UserName&& name_of, GroupName&& group_of)
{
    auto user = name_of(peer.uid);
    if (!user)
        return false;
    std::vector<std::string> groups;
    // (gid is unset when the bus gave the groups: they include it already)
    if (peer.gid != static_cast<gid_t>(-1) && std::find(peer.gids.begin(), peer.gids.end(), peer.gid) == peer.gids.end())
        peer.gids.push_back(peer.gid);
    for (auto g : peer.gids) {
        auto n = group_of(g);
        if (!n)
            return false;
        if (!n->empty())
            groups.push_back(std::move(*n));
    }
    peer.user_name = std::move(*user);
    peer.group_names = std::move(groups);
    return true;
}

}  // namespace

void resolve_peer_names(policy::Peer& peer)
{
    fill_names(
        peer, [](uid_t uid) { return std::optional<std::string>(user_name(uid)); },
        [](gid_t gid) { return std::optional<std::string>(group_name(gid)); });
}

bool resolve_peer_names_cached(policy::Peer& peer)
{
    return fill_names(
        peer, [](uid_t uid) { return g_user_names.find(uid); }, [](gid_t gid) { return g_group_names.find(gid); });
}

Result<policy::Peer> peer_credentials_from_socket(int fd)
{
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return fail(make_system_error("SO_PEERCRED failed", errno));
    policy::Peer peer;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.pid = cred.pid;
    // The supplementary groups the peer had when it connected, from the
    // kernel: NSS membership could differ from what the process really holds.
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            peer.gids = groups;
            break;
        }
        if (errno != ERANGE || attempt == 1 || glen > 65536 * sizeof(gid_t))
            return fail(make_system_error("SO_PEERGROUPS failed", errno));
        groups.resize(glen / sizeof(gid_t));
    }
    return peer;
}


}  // namespace bpfbroker::brokerd
