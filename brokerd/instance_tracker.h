// Accounting of live per-client instances, per uid, for the
// max_instances_per_uid limit.
//
// The daemon closes its own fds once it has handed an instance out, so a
// per-client program lives exactly as long as the client keeps an fd to it
// or an attachment (a socket holding it). The tracker remembers program ids
// and the ids of the maps handed out with them, and asks the kernel which of
// them still exist — but only when a uid reaches its limit (or the whole
// table is full). Below the limit an acquire costs no bpf() call at all: a
// count that errs high below the limit refuses nothing, so there is nothing
// to learn. At the limit the uid's own instances (at most `limit` of them)
// are probed once, and released ones are forgotten.
//
// "Live" means the kernel still has the program. One exception keeps the
// limit honest: a client that closes the program but keeps the map fds it
// was given keeps the maps (and their memory) alive, and must not escape the
// limit that way. But the kernel finishes a release late: a closed
// program's maps go after an RCU grace period and a work item, and under
// load even the program can outlive its last close() for a while (deferred
// fput). So "still there" is, for a moment, also what every honest release
// looks like; counting it refused honest clients under churn. So when a uid
// is at its limit, instances still there are re-probed a few times over a
// short window (SettlePolicy), all in one window: a release in progress
// finishes within it, a held fd does not. An instance still there after a
// whole window is marked as held and is not waited for again while it stays
// as it was (below), so a client at its limit cannot make the daemon sleep
// on every request; and each uid has a budget of waiting (SettlePolicy), so
// one that keeps every new instance cannot either. Waits happen outside the
// lock: other uids are not held.
//
// A slot is reserved before the load (reserve()) and committed with the
// loaded ids or released by the Reservation's destructor, so two concurrent
// requests of one uid can never both pass the limit and nothing is loaded
// for a uid already at it. Any answer from the kernel other than ENOENT
// keeps an id counted: when in doubt the count errs high, which refuses a
// request rather than exceeding a limit.
//
// Thread-safe: the socket and D-Bus transports call it concurrently.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace bpfbroker::brokerd {

// Bound on instances tracked across all uids (reserved slots included):
// each uid's own limit (settings, 16 by default) keeps the table small; this
// cap keeps it bounded even with many uids or a generous limit.
inline constexpr std::size_t kMaxTrackedInstances = 65536;

// True while the kernel still has program `id`. The default asks the kernel
// (needs CAP_SYS_ADMIN, i.e. the daemon's root); tests may substitute.
using ProgramLiveness = std::function<bool(std::uint32_t id)>;
bool kernel_has_program(std::uint32_t id);
// The same question about a map id.
using MapLiveness = std::function<bool(std::uint32_t id)>;
bool kernel_has_map(std::uint32_t id);

// How long a uid at its limit gives the kernel to finish releasing its
// instances: `reprobes` more probes, the first `interval` after the first
// probe and each wait twice the one before (5, 10, ... 160 ms: 315 ms in
// all), ending as soon as none is left lingering. On an idle machine a
// release finishes within a few ms. Under a flood of releases the kernel's
// RCU callbacks back up: a closed program's map was seen here to outlive
// 200 ms, and a 50 ms window once refused one of 48 uids churning at the
// default limit of 16 under a loaded CI run (all 16 of its closed slots
// still there at once). No window makes a count exact at every instant; a
// uid is refused only when all `limit` of its slots linger past it. The
// worst a request waits is 315 ms, once per instance a client really keeps
// (out of the budget below).
//
// The wait sleeps on the thread that serves every caller of a transport
// (the socket's one loop, the bus thread), and a client that keeps each new
// instance's maps can make every other acquire wait a window. So each uid
// has a budget of waiting, kept while the uid holds nothing too:
// `budget_cap`, refilled at `budget_per_second` (a tenth of the thread). A
// window the budget cannot cover stops early, and what still lingers then
// counts as live (a refusal at the limit rather than one instance past it)
// without being marked held, so it is waited for again once the budget
// allows. An honest release settles in about 15-20 ms here (20 rounds at
// a limit of 1 took 400 ms in instance_tracker_test): a uid closing and
// acquiring again at a limit of 1, back to back, has about 50 rounds of
// budget before it must slow to the refill.
//
// A window ends as soon as enough instances are gone to bring the uid under
// its limit: what a request needs to know. A held mark remembers whether
// the program itself was there: one held with its program whose program
// is now gone is a release under way (the client closed it; its maps go
// late) and is waited for again, out of the budget; one held with the
// program still there, or held by its maps alone, costs no wait.
struct SettlePolicy {
    unsigned reprobes = 6;
    std::chrono::milliseconds interval{5};
    std::chrono::milliseconds budget_cap{1000};
    std::chrono::milliseconds budget_per_second{100};
};

class InstanceTracker {
public:
    explicit InstanceTracker(std::size_t capacity = kMaxTrackedInstances,
                             ProgramLiveness alive = kernel_has_program, MapLiveness map_alive = kernel_has_map,
                             SettlePolicy settle = {});

    InstanceTracker(const InstanceTracker&) = delete;
    InstanceTracker& operator=(const InstanceTracker&) = delete;

    // A per-client slot of one uid, held from before the load until commit()
    // or destruction. Move-only.
    class Reservation {
    public:
        Reservation() = default;
        Reservation(Reservation&& other) noexcept;
        Reservation& operator=(Reservation&& other) noexcept;
        Reservation(const Reservation&) = delete;
        Reservation& operator=(const Reservation&) = delete;
        ~Reservation();

        // True when a slot is held (reserve() succeeded, not yet committed).
        explicit operator bool() const noexcept { return tracker_ != nullptr; }

        // Turns the slot into a tracked instance: `prog_id` and the ids of
        // the maps handed out with it. `live`, when given, is a gauge counted
        // up now and down when the tracker learns the kernel released the
        // instance; it must outlive the tracker.
        void commit(std::uint32_t prog_id, std::vector<std::uint32_t> map_ids,
                    std::atomic<std::int64_t>* live = nullptr);

    private:
        friend class InstanceTracker;
        Reservation(InstanceTracker* tracker, uid_t uid) : tracker_(tracker), uid_(uid) {}
        void release() noexcept;
        InstanceTracker* tracker_ = nullptr;
        uid_t uid_ = 0;
    };

    // A slot for `uid`, or an empty Reservation when the uid already has
    // `limit` live instances (reserved slots count) or the table is full.
    [[nodiscard]] Reservation reserve(uid_t uid, unsigned limit);

    // `uid`'s instances (live and reserved). Exact when below `limit`'s
    // reach: at or above `limit` the released ones are forgotten first, as
    // reserve() does, so a caller deciding on this number refuses only what
    // reserve() would refuse.
    unsigned count(uid_t uid, unsigned limit);

    // Called (under the tracker's lock: it must not call back) for every
    // instance forgotten because the kernel released it, so registries
    // keyed by the same instances forget it too. Set before any use.
    using ForgetListener = std::function<void(uid_t uid, std::uint32_t prog_id)>;
    void set_on_forget(ForgetListener listener) { on_forget_ = std::move(listener); }

    // Instances tracked across all uids, reserved slots included (no probing).
    [[nodiscard]] std::size_t size() const;

    // Probes every tracked instance once (no settle waits) and forgets the
    // released ones, so that the `live` gauges are exact now. At most
    // `capacity` bpf() calls, none of them under the lock.
    void forget_released_now();

private:
    struct Instance {
        std::uint32_t prog_id;
        std::vector<std::uint32_t> map_ids;
        // Found still there after a whole settle window: with its program,
        // or by its maps alone.
        enum class Held { No, WithProgram, MapsOnly } held = Held::No;
        std::atomic<std::int64_t>* live = nullptr;  // counted down when forgotten
    };
    using Clock = std::chrono::steady_clock;
    using Millis = std::chrono::duration<double, std::milli>;
    // How long this uid may still make a request wait (SettlePolicy).
    // Kept apart from a uid's Slots, which go when its last instance does:
    // a client closing all its instances must not get a fresh budget.
    struct SettleBudget {
        Millis left;
        Clock::time_point at;
        [[nodiscard]] Millis level(const SettlePolicy& policy, Clock::time_point now) const;
    };
    struct Slots {
        std::vector<Instance> instances;
        unsigned reserved = 0;
        [[nodiscard]] unsigned used() const { return static_cast<unsigned>(instances.size()) + reserved; }
    };
    enum class Verdict { Live, Gone, HeldWithProgram, HeldByMaps };
    struct Judged {
        std::unordered_map<std::uint32_t, Verdict> verdicts;  // per program id
        Millis waited{0};
    };

    // The kernel still has the program (`program`, its answer) or a map
    // handed out with it.
    [[nodiscard]] bool present(const Instance& instance, bool program) const;
    // A verdict per program id; when `settle`, waits one settle window, or
    // as much of it as `may_wait` covers, or until `enough` are gone.
    [[nodiscard]] Judged judge(const std::vector<Instance>& seen, bool settle, Millis may_wait, std::size_t enough) const;
    // Probes `uid`'s instances without holding the lock and forgets the gone
    // ones; with `limit`, waits (settles) until the uid is under it. Returns
    // with `lock` held again.
    void forget_released(std::unique_lock<std::mutex>& lock, uid_t uid, std::optional<unsigned> limit);
    void forget_released_everywhere(std::unique_lock<std::mutex>& lock);
    void commit(uid_t uid, std::uint32_t prog_id, std::vector<std::uint32_t> map_ids,
                std::atomic<std::int64_t>* live);
    void release(uid_t uid) noexcept;
    void drop_if_empty_locked(uid_t uid);
    // All of `uid`'s budget of waiting, taken (under the lock); zero when
    // the budget table is full of uids still refilling (fail closed: no wait).
    Millis take_settle_budget(uid_t uid, Clock::time_point now);
    void give_back_settle_budget(uid_t uid, Millis unused);

    mutable std::mutex mutex_;
    std::unordered_map<uid_t, Slots> by_uid_;
    std::unordered_map<uid_t, SettleBudget> settle_budgets_;  // only uids not refilled to the cap
    std::size_t total_ = 0;  // instances + reserved, all uids
    const std::size_t capacity_;
    const ProgramLiveness alive_;
    const MapLiveness map_alive_;
    const SettlePolicy settle_;
    ForgetListener on_forget_;
};

}  // namespace bpfbroker::brokerd
