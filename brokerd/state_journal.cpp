// The daemon's journal of live instances; see state_journal.h.
#include "brokerd/state_journal.h"

#include "brokerd/log.h"

#include "base/strict_json.h"
#include "wire/json_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

namespace bpfbroker::brokerd {

namespace {

constexpr const char* kJournalName = "state.journal";
constexpr const char* kJournalTemporary = "state.journal.new";

nlohmann::json peer_to_json(const policy::Peer& p)
{
    return {{"uid", p.uid}, {"gid", p.gid}, {"gids", p.gids}, {"user", p.user_name}, {"groups", p.group_names}};
}

// The grant fields of a record, shared by both kinds.
void put_held(nlohmann::json& j, const HeldGrant& held)
{
    j["program"] = held.program;
    j["peer"] = peer_to_json(held.peer);
    j["manifest_sha256"] = held.manifest_sha256;
    j["signer"] = held.signer_key_id;
}

nlohmann::json guard_to_json(const SavedGuard& g)
{
    return {{"name", g.name}, {"map_id", g.map_id}, {"offset", g.offset}};
}

nlohmann::json to_json(const SavedInstance& s)
{
    nlohmann::json j = {{"prog_id", s.prog_id},
                        {"tag", s.tag},
                        {"map_ids", s.map_ids},
                        {"broker_attached", s.broker_attached},
                        {"caller_pid", s.caller_pid},
                        {"caller_start_time", s.caller_start_time}};
    if (s.link_id != 0)
        j["link_id"] = s.link_id;
    put_held(j, s.held);
    if (s.guard)
        j["guard"] = guard_to_json(*s.guard);
    return j;
}

// A caller's user and group names come from NSS, which may hand out any
// bytes: a name that is not UTF-8 is written with its invalid bytes
// replaced, never thrown over (which would stop the daemon mid-acquire).
std::string line_of(const nlohmann::json& j)
{
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The "add" line by hand: one is written per per-client acquire, where
// building it as an nlohmann::json cost 10 us of the daemon's CPU
// (2026-12-02). Keys in sorted order, so it is byte for byte what
// to_json(s).dump() writes (state_journal_test holds it to that). A name
// that is not UTF-8 (NSS may hand out any bytes) takes the general path,
// its invalid bytes replaced.
std::string add_line(const SavedInstance& s)
{
    varlink::JsonWriter w;
    w.open().key("add").open();
    w.key("broker_attached").boolean(s.broker_attached);
    w.key("caller_pid").signed_number(s.caller_pid);
    w.key("caller_start_time").number(s.caller_start_time);
    if (s.guard)
        w.key("guard")
            .open()
            .key("map_id")
            .number(s.guard->map_id)
            .key("name")
            .string(s.guard->name)
            .key("offset")
            .number(s.guard->offset)
            .close();
    if (s.link_id != 0)
        w.key("link_id").number(s.link_id);
    w.key("manifest_sha256").string(s.held.manifest_sha256);
    w.key("map_ids").array(s.map_ids, [&w](std::uint32_t id) { w.number(id); });
    const policy::Peer& p = s.held.peer;
    w.key("peer").open().key("gid").number(p.gid);
    w.key("gids").array(p.gids, [&w](gid_t g) { w.number(g); });
    w.key("groups").array(p.group_names, [&w](const std::string& g) { w.string(g); });
    w.key("uid").number(p.uid).key("user").string(p.user_name).close();
    w.key("prog_id").number(s.prog_id).key("program").string(s.held.program);
    w.key("signer").string(s.held.signer_key_id).key("tag").string(s.tag);
    w.close().close();
    if (w.ok())
        return std::move(w).take();
    return line_of(nlohmann::json{{"add", to_json(s)}});
}

nlohmann::json to_json(const SavedShared& s)
{
    nlohmann::json maps = nlohmann::json::array();
    for (const auto& m : s.maps)
        maps.push_back({{"name", m.name}, {"id", m.id}});
    nlohmann::json j = {{"key", s.key},         {"manifest_sha256", s.manifest_sha256}, {"parameters", s.parameters},
                        {"prog_name", s.prog_name}, {"prog_id", s.prog_id},             {"tag", s.tag},
                        {"maps", maps}};
    if (s.guard)
        j["guard"] = guard_to_json(*s.guard);
    return j;
}

// Reads `key` of `j` as T, or fails: the file is ours, but is read as input.
template <typename T>
bool read_field(const nlohmann::json& j, const char* key, T& out)
{
    auto it = j.find(key);
    if (it == j.end())
        return false;
    if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string())
            return false;
    } else if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean())
            return false;
    } else {
        if (!it->is_number_integer() || it->template get<std::int64_t>() < 0 ||
            it->template get<std::uint64_t>() > std::numeric_limits<T>::max())
            return false;
    }
    out = it->template get<T>();
    return true;
}

template <typename T>
bool read_list(const nlohmann::json& j, const char* key, std::vector<T>& out)
{
    auto it = j.find(key);
    if (it == j.end() || !it->is_array() || it->size() > 1024)
        return false;
    for (const auto& item : *it) {
        nlohmann::json wrapped = {{"v", item}};
        T value{};
        if (!read_field(wrapped, "v", value))
            return false;
        out.push_back(std::move(value));
    }
    return true;
}

bool read_held(const nlohmann::json& j, HeldGrant& held)
{
    auto peer = j.find("peer");
    if (!j.is_object() || peer == j.end() || !peer->is_object())
        return false;
    auto& p = held.peer;
    return read_field(j, "program", held.program) && read_field(*peer, "uid", p.uid) &&
           read_field(*peer, "gid", p.gid) && read_list(*peer, "gids", p.gids) &&
           read_field(*peer, "user", p.user_name) && read_list(*peer, "groups", p.group_names) &&
           read_field(j, "manifest_sha256", held.manifest_sha256) && read_field(j, "signer", held.signer_key_id);
}

// The optional "guard" of a record: false when present but malformed.
bool read_guard(const nlohmann::json& j, std::optional<SavedGuard>& out)
{
    auto g = j.find("guard");
    if (g == j.end())
        return true;
    SavedGuard guard;
    if (!g->is_object() || !read_field(*g, "name", guard.name) || !read_field(*g, "map_id", guard.map_id) ||
        !read_field(*g, "offset", guard.offset))
        return false;
    out = std::move(guard);
    return true;
}

std::optional<SavedInstance> from_json(const nlohmann::json& j)
{
    SavedInstance s;
    bool ok = read_held(j, s.held) && read_field(j, "prog_id", s.prog_id) && read_field(j, "tag", s.tag) &&
              read_list(j, "map_ids", s.map_ids) && read_field(j, "broker_attached", s.broker_attached) &&
              read_field(j, "caller_pid", s.caller_pid) && read_field(j, "caller_start_time", s.caller_start_time) &&
              read_guard(j, s.guard) && (!j.contains("link_id") || read_field(j, "link_id", s.link_id));
    if (!ok)
        return std::nullopt;
    return s;
}

std::optional<SavedShared> shared_from_json(const nlohmann::json& j)
{
    SavedShared s;
    if (!j.is_object() || !read_field(j, "key", s.key) || !read_field(j, "manifest_sha256", s.manifest_sha256) ||
        !read_field(j, "prog_name", s.prog_name) || !read_field(j, "prog_id", s.prog_id) ||
        !read_field(j, "tag", s.tag) || !read_guard(j, s.guard))
        return std::nullopt;
    auto params = j.find("parameters");
    auto maps = j.find("maps");
    if (params == j.end() || !params->is_object() || params->size() > 64 || maps == j.end() || !maps->is_array() ||
        maps->size() > 64)
        return std::nullopt;
    for (const auto& [name, value] : params->items()) {
        std::uint64_t v = 0;
        if (!read_field(nlohmann::json{{"v", value}}, "v", v))
            return std::nullopt;
        s.parameters.emplace(name, v);
    }
    for (const auto& m : *maps) {
        SavedMap map;
        if (!m.is_object() || !read_field(m, "name", map.name) || !read_field(m, "id", map.id))
            return std::nullopt;
        s.maps.push_back(std::move(map));
    }
    return s;
}

// The "key" of a shared_hold/shared_overflowed/shared_forget record.
std::optional<std::string> key_of(const nlohmann::json& j)
{
    std::string key;
    if (!j.is_object() || !read_field(j, "key", key))
        return std::nullopt;
    return key;
}

// Why the file behind `fd` is not the daemon's own, or "".
std::string why_distrusted(int fd, uid_t owner)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        return "fstat failed";
    if (!S_ISREG(st.st_mode))
        return "it is not a regular file";
    if (st.st_uid != owner)
        return "it is owned by uid " + std::to_string(st.st_uid) + ", not " + std::to_string(owner);
    if ((st.st_mode & 077) != 0)
        return "its mode lets group or others read or write it (it must be 0600)";
    if (static_cast<std::size_t>(st.st_size) > kMaxJournalBytes)
        return "it is larger than " + std::to_string(kMaxJournalBytes) + " bytes";
    return {};
}

// Every line of the file behind `fd`, from the start.
std::vector<std::string> read_lines(int fd)
{
    std::vector<std::string> lines;
    std::string pending;
    char buf[65536];
    off_t offset = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, offset);
        if (n <= 0)
            break;
        offset += n;
        for (ssize_t i = 0; i < n; ++i) {
            if (buf[i] != '\n') {
                if (pending.size() <= kMaxJournalLineBytes)
                    pending += buf[i];
                continue;
            }
            lines.push_back(std::move(pending));
            pending.clear();
        }
    }
    // A last line without its newline was being written when the daemon died.
    return lines;
}

// Opens the journal file in `dir`, created 0600 when absent.
UniqueFd open_journal_file(int dir, const char* name, int extra_flags)
{
    return UniqueFd(::openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | extra_flags, 0600));
}

}  // namespace

std::uint64_t process_start_time(pid_t pid)
{
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        return 0;
    char buf[1024];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    const std::string stat(buf, static_cast<std::size_t>(n));
    // The command may hold spaces and parentheses: fields count from the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos)
        return 0;
    std::istringstream fields(stat.substr(close + 1));
    std::string field;
    for (int i = 3; i <= 22 && fields >> field; ++i)
        if (i == 22)
            return std::strtoull(field.c_str(), nullptr, 10);
    return 0;
}

StateJournal::StateJournal(UniqueFd dir, UniqueFd file, std::size_t lines, std::string distrusted)
    : dir_(std::move(dir)), file_(std::move(file)), lines_(lines), distrusted_(std::move(distrusted))
{
}

StateJournal::StateJournal(StateJournal&& other) noexcept
    : dir_(std::move(other.dir_)), file_(std::move(other.file_)), lines_(other.lines_), torn_(other.torn_),
      distrusted_(std::move(other.distrusted_)), shared_(std::move(other.shared_))
{
}

Result<StateJournal> StateJournal::open(const std::string& runtime_dir, uid_t owner)
{
    UniqueFd dir(::open(runtime_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir)
        return fail(make_system_error("cannot open the runtime directory " + runtime_dir, errno));
    UniqueFd file = open_journal_file(dir.get(), kJournalName, O_APPEND);
    std::string distrusted;
    if (file)
        distrusted = why_distrusted(file.get(), owner);
    if (!file || !distrusted.empty()) {
        // Not ours (or not openable as ours): never read it; a fresh one replaces it.
        if (!file)
            distrusted = std::string("it cannot be opened: ") + std::strerror(errno);
        file.reset();
        ::unlinkat(dir.get(), kJournalTemporary, 0);
        UniqueFd fresh = open_journal_file(dir.get(), kJournalTemporary, O_EXCL | O_APPEND);
        if (!fresh || ::fchown(fresh.get(), owner, static_cast<gid_t>(-1)) != 0 ||
            ::renameat(dir.get(), kJournalTemporary, dir.get(), kJournalName) != 0)
            return fail(make_system_error("cannot replace " + runtime_dir + "/" + kJournalName, errno));
        file = std::move(fresh);
    }
    const std::size_t lines = read_lines(file.get()).size();
    return StateJournal(std::move(dir), std::move(file), lines, std::move(distrusted));
}

std::vector<SavedInstance> StateJournal::replay(std::size_t& skipped) const
{
    std::lock_guard lock(mutex_);
    skipped = 0;
    // By (prog_id, uid), as the registry keys them; in order of registration.
    std::map<std::pair<std::uint32_t, uid_t>, SavedInstance> live;
    for (const auto& line : read_lines(file_.get())) {
        if (line.size() > kMaxJournalLineBytes) {
            ++skipped;
            continue;
        }
        auto j = parse_strict_json(line, ErrorCode::Internal);
        if (!j || !j->is_object() || j->size() != 1) {
            ++skipped;
            continue;
        }
        if (j->begin().key().starts_with("shared_"))
            continue;  // replay_shared()'s
        if (auto add = j->find("add"); add != j->end()) {
            auto saved = from_json(*add);
            if (!saved) {
                ++skipped;
                continue;
            }
            auto key = std::pair{saved->prog_id, saved->held.peer.uid};
            live.insert_or_assign(key, std::move(*saved));
            continue;
        }
        auto forget = j->find("forget");
        std::uint32_t prog_id = 0;
        uid_t uid = 0;
        if (forget == j->end() || !forget->is_object() || !read_field(*forget, "prog_id", prog_id) ||
            !read_field(*forget, "uid", uid)) {
            ++skipped;
            continue;
        }
        live.erase(std::pair{prog_id, uid});
    }
    std::vector<SavedInstance> out;
    out.reserve(live.size());
    for (auto& [key, saved] : live)
        out.push_back(std::move(saved));
    return out;
}

std::vector<SavedShared> StateJournal::replay_shared(std::size_t& skipped)
{
    std::lock_guard lock(mutex_);
    skipped = 0;
    shared_.clear();
    for (const auto& line : read_lines(file_.get())) {
        if (line.size() > kMaxJournalLineBytes)
            continue;  // replay() counts it
        auto j = parse_strict_json(line, ErrorCode::Internal);
        if (!j || !j->is_object() || j->size() != 1 || !j->begin().key().starts_with("shared_"))
            continue;  // replay()'s to count
        const std::string kind = j->begin().key();
        const auto& body = j->begin().value();
        bool ok = false;
        if (kind == "shared_add") {
            auto s = shared_from_json(body);
            ok = s && (shared_.contains(s->key) || shared_.size() < kMaxSavedShared);
            if (ok)
                shared_.insert_or_assign(s->key, std::move(*s));
        } else if (auto key = key_of(body); key && kind == "shared_forget") {
            ok = true;
            shared_.erase(*key);
        } else if (key && kind == "shared_overflowed") {
            ok = true;
            if (auto it = shared_.find(*key); it != shared_.end())
                it->second.overflowed = true;
        } else if (key && kind == "shared_hold") {
            HeldGrant held;
            ok = read_held(body, held);
            auto it = shared_.find(*key);
            if (ok && it != shared_.end()) {
                if (it->second.holders.size() < kMaxSavedSharedHolders || it->second.holders.contains(held.peer.uid))
                    it->second.holders.insert_or_assign(held.peer.uid, std::move(held));
                else
                    it->second.overflowed = true;
            }
        }
        if (!ok)
            ++skipped;
    }
    std::vector<SavedShared> out;
    out.reserve(shared_.size());
    for (const auto& [key, s] : shared_)
        out.push_back(s);
    return out;
}

Result<void> StateJournal::append(std::string line)
{
    std::lock_guard lock(mutex_);
    return append_locked(std::move(line));
}

Result<void> StateJournal::append_locked(std::string line)
{
    // One write of the whole text: O_APPEND keeps concurrent lines whole.
    // After a write that left part of a line, the next starts on a line of
    // its own: replay then skips only the fragment.
    line.push_back('\n');
    const auto records = static_cast<std::size_t>(std::count(line.begin(), line.end(), '\n'));
    if (torn_)
        line.insert(line.begin(), '\n');
    const ssize_t n = ::write(file_.get(), line.data(), line.size());
    if (n == static_cast<ssize_t>(line.size())) {
        torn_ = false;
        lines_ += records;
        return {};
    }
    const int err = n < 0 ? errno : ENOSPC;  // a short write: the file took no more
    torn_ = torn_ || n > 0;
    log_caller_warning("state-journal-write", std::string("cannot append to the state journal: ") +
                                                  std::strerror(err) + "; a restart will not find this record");
    return fail(make_system_error("cannot append to the state journal", err));
}

Result<void> StateJournal::record_added(const SavedInstance& instance)
{
    return append(add_line(instance));
}

void StateJournal::record_forgotten(uid_t uid, std::uint32_t prog_id)
{
    varlink::JsonWriter w;
    w.open().key("forget").open().key("prog_id").number(prog_id).key("uid").number(uid).close().close();
    (void)append(std::move(w).take());  // logged; a stale add replays as an instance the kernel no longer has
}

namespace {

std::string shared_hold_line(const std::string& key, const HeldGrant& held)
{
    nlohmann::json body = {{"key", key}};
    put_held(body, held);
    return line_of(nlohmann::json{{"shared_hold", body}});
}

std::string shared_key_line(const char* kind, const std::string& key)
{
    return line_of(nlohmann::json{{kind, {{"key", key}}}});
}

// Every line that writes `s` again: its add, each holder, the overflow.
std::string shared_lines_of(const SavedShared& s)
{
    std::string text = line_of(nlohmann::json{{"shared_add", to_json(s)}}) + "\n";
    for (const auto& [uid, held] : s.holders)
        text += shared_hold_line(s.key, held) + "\n";
    if (s.overflowed)
        text += shared_key_line("shared_overflowed", s.key) + "\n";
    return text;
}

}  // namespace

void StateJournal::record_shared_added(const SavedShared& shared)
{
    std::string text = shared_lines_of(shared);
    text.pop_back();
    // Written and remembered under one lock: a rewrite between the two
    // would write the file without this instance and then lose the line.
    std::lock_guard lock(mutex_);
    (void)append_locked(std::move(text));  // logged
    shared_.insert_or_assign(shared.key, shared);
}

void StateJournal::record_shared_holder(const std::string& key, const HeldGrant& held)
{
    std::string line = shared_hold_line(key, held);
    std::lock_guard lock(mutex_);
    (void)append_locked(std::move(line));  // logged
    if (auto it = shared_.find(key); it != shared_.end())
        it->second.holders.insert_or_assign(held.peer.uid, held);
}

void StateJournal::record_shared_overflowed(const std::string& key)
{
    std::string line = shared_key_line("shared_overflowed", key);
    std::lock_guard lock(mutex_);
    (void)append_locked(std::move(line));  // logged
    if (auto it = shared_.find(key); it != shared_.end())
        it->second.overflowed = true;
}

void StateJournal::record_shared_forgotten(const std::string& key)
{
    std::string line = shared_key_line("shared_forget", key);
    std::lock_guard lock(mutex_);
    (void)append_locked(std::move(line));  // logged
    shared_.erase(key);
}

std::size_t StateJournal::shared_lines() const
{
    std::size_t n = 0;
    for (const auto& [key, s] : shared_)
        n += 1 + s.holders.size() + (s.overflowed ? 1 : 0);
    return n;
}

bool StateJournal::wants_rewrite(std::size_t live) const
{
    std::lock_guard lock(mutex_);
    return lines_ > 2 * (live + shared_lines()) + kJournalSlackLines;
}

Result<void> StateJournal::rewrite(const std::vector<SavedInstance>& live)
{
    std::lock_guard lock(mutex_);
    ::unlinkat(dir_.get(), kJournalTemporary, 0);
    UniqueFd fresh = open_journal_file(dir_.get(), kJournalTemporary, O_EXCL | O_APPEND);
    if (!fresh)
        return fail(make_system_error("cannot create the new state journal", errno));
    std::string text;
    for (const auto& s : live)
        text += add_line(s) + "\n";
    for (const auto& [key, s] : shared_)
        text += shared_lines_of(s);
    for (std::size_t done = 0; done < text.size();) {
        ssize_t n = ::write(fresh.get(), text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(make_system_error("cannot write the new state journal", errno));
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fresh.get()) != 0 || ::renameat(dir_.get(), kJournalTemporary, dir_.get(), kJournalName) != 0)
        return fail(make_system_error("cannot replace the state journal", errno));
    file_ = std::move(fresh);
    torn_ = false;
    lines_ = live.size() + shared_lines();
    return {};
}

}  // namespace bpfbroker::brokerd
