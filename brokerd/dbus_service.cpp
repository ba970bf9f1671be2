// org.bpfbroker.Broker1 on D-Bus; see dbus_service.h.
#include "brokerd/dbus_service.h"

#include "brokerd/bus_caller_cache.h"
#include "brokerd/dbus_handout_info.h"
#include "brokerd/log.h"
#include "brokerd/pending_name_lookups.h"
#include "brokerd/peer_identity.h"
#include "brokerd/polkit_authority.h"

#include "broker1_adaptor.h"       // generated from org.bpfbroker.Broker1.xml
#include "varlink_description.h"  // generated: the version (shared with GetInfo)

#include <bpfbroker/error_names.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace bpfbroker::brokerd {

namespace {

sdbus::Error to_dbus_error(const Error& e)
{
    return sdbus::Error(dbus_error_name(e.code), e.message);
}

}  // namespace

using FdsByName = std::map<std::string, sdbus::UnixFd>;
using AcquireResult = sdbus::Result<sdbus::UnixFd, FdsByName, DbusHandoutInfo>;
using AcquireWithOptionsResult = sdbus::Result<FdsByName, FdsByName, FdsByName, DbusHandoutInfo>;

// (name, {version, description, state, instance, allowed, needs_polkit, error, reason})
using ProgramRow = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
using FeatureMap = std::map<std::string, sdbus::Struct<bool, std::string>>;

namespace {

// The bus's wire form of one ListPrograms row (an acquire reply's info:
// dbus_handout_info.h).
ProgramRow to_wire(const ProgramListing& l)
{
    std::map<std::string, sdbus::Variant> fields{
        {"version", sdbus::Variant(l.version)},
        {"description", sdbus::Variant(l.description)},
        {"state", sdbus::Variant(std::string(policy::entry_state_name(l.state)))},
        {"instance", sdbus::Variant(l.instance ? std::string(policy::instance_mode_name(*l.instance)) : std::string())},
        {"allowed", sdbus::Variant(l.allowed)},
        {"needs_polkit", sdbus::Variant(l.needs_polkit)},
        {"cut_live", sdbus::Variant(l.cut_live)},
        {"error", sdbus::Variant(l.code ? std::string(error_code_name(*l.code)) : std::string())},
        {"reason", sdbus::Variant(l.reason)}};
    return ProgramRow(l.name, std::move(fields));
}

}  // namespace

class Broker1Object final : public sdbus::AdaptorInterfaces<org::bpfbroker::Broker1_adaptor> {
public:
    Broker1Object(sdbus::IConnection& connection, Broker& broker, PolkitAuthority* polkit)
        : AdaptorInterfaces(connection, kDbusObjectPath), broker_(broker), polkit_(polkit), callers_(connection)
    {
        register_acquire_methods();
        registerAdaptor();
    }
    ~Broker1Object() { unregisterAdaptor(); }

    // Readable when calls parked for their callers' names may go on;
    // names_arrived() continues them (on the bus thread).
    [[nodiscard]] int names_ready_fd() const { return names_.ready_fd(); }
    void names_arrived() { names_.dispatch_ready(); }

private:
    // Runs `body` with the caller's context: the caller as the bus recorded
    // it at connect (the driver's UnixUserID, ProcessID and UnixGroupIDs,
    // not /proc), asked once per bus name, its names, and its bus name.
    // Names the cache lacks are looked up on a worker and `body` runs once
    // they arrive: the bus thread never waits on the user database. An
    // unknown caller, or one with too many calls waiting, gets the error.
    template <typename ResultT, typename Body>
    void with_caller(const std::shared_ptr<ResultT>& result, Body body)
    {
        answering_errors(*result, "a D-Bus caller", [&] { with_caller_unguarded(result, std::move(body)); });
    }

    template <typename ResultT, typename Body>
    void with_caller_unguarded(const std::shared_ptr<ResultT>& result, Body body)
    {
        auto sender = getObject().getCurrentlyProcessedMessage()->getSender();
        auto peer = callers_.credentials(sender);
        if (!peer) {
            result->returnError(to_dbus_error(peer.error()));
            return;
        }
        auto then = [this, result, sender, body = std::move(body)](policy::Peer named) {
            answering_errors(*result, sender, [&] {
                body(RequestContext{TransportKind::Dbus, std::move(named), sender, polkit_ != nullptr});
            });
        };
        auto uid = std::to_string(peer->uid);
        if (auto parked = names_.with_names(std::move(*peer), std::move(then)); !parked) {
            log_caller_warning("dbus-name-waits uid=" + uid,
                               "refused a D-Bus call from uid " + uid + ": " + parked.error().message + ", ignoring");
            result->returnError(to_dbus_error(parked.error()));
        }
    }

    // Runs `fn`, which answers `result`. What it throws (a reply that could
    // not be built, an allocation that failed) is answered as an error here:
    // sdbus-c++ catches only sdbus::Error around a method and nothing around
    // an async reply's handler (polkit's), and an exception unwinding
    // through sd-bus would stop the bus thread or the daemon.
    template <typename ResultT, typename Fn>
    static void answering_errors(const ResultT& result, const std::string& caller, Fn&& fn)
    {
        try {
            fn();
        } catch (const sdbus::Error& e) {
            answer_error(result, caller, e);
        } catch (const std::exception& e) {
            answer_error(result, caller, to_dbus_error(make_error(ErrorCode::Internal, std::string("internal error: ") + e.what())));
        }
    }

    template <typename ResultT>
    static void answer_error(const ResultT& result, const std::string& caller, const sdbus::Error& e)
    {
        try {
            result.returnError(e);
        } catch (const std::exception& lost) {  // a send that failed cannot be answered at all
            log_error("D-Bus: cannot answer " + caller + ": " + lost.what());
        }
    }

    // For a method answered by its return value: sdbus-c++ turns only an
    // sdbus::Error into an error reply, so anything else becomes one.
    template <typename Fn>
    static auto returning_bus_errors(Fn fn) -> decltype(fn())
    {
        try {
            return fn();
        } catch (const sdbus::Error&) {
            throw;
        } catch (const std::exception& e) {
            throw to_dbus_error(make_error(ErrorCode::Internal, std::string("internal error: ") + e.what()));
        }
    }

    // Asks the core (`ask(ctx, verdict)`); when it asks for polkit, asks
    // polkit and the core again with the verdict; then replies with
    // `finish` or the core's error. Only a call that waits for polkit keeps
    // copies of its context and request: the rest are decided in place.
    template <typename T, typename ResultT, typename Ask, typename Finish>
    void decide(std::shared_ptr<ResultT> result, const RequestContext& ctx, Ask ask, Finish finish)
    {
        Outcome<T> outcome = ask(ctx, nullptr);
        if (outcome.needs_polkit() && polkit_) {
            polkit_->check(ctx.peer.uid, ctx.bus_name, outcome.question().action,
                           [result, ctx, ask = std::move(ask), finish](const PolkitVerdict& verdict) {
                               answering_errors(*result, ctx.bus_name, [&] {
                                   complete(*result, Outcome<T>(ask(ctx, &verdict)), finish);
                               });
                           });
            return;
        }
        complete(*result, std::move(outcome), finish);
    }

    template <typename T, typename ResultT, typename Finish>
    static void complete(ResultT& result, Outcome<T> outcome, const Finish& finish)
    {
        if (outcome.denied())
            result.returnError(to_dbus_error(outcome.error()));
        else if (outcome.needs_polkit())
            result.returnError(to_dbus_error(make_error(ErrorCode::Internal, "polkit was asked once already")));
        else
            finish(result, outcome.value());
    }

    // By hand, not by the generated adaptor, so their info a{sv} is written
    // straight into the reply; names and types as the interface XML says.
    void register_acquire_methods()
    {
        getObject()
            .registerMethod("AcquireProgram")
            .onInterface(INTERFACE_NAME)
            .withInputParamNames("name")
            .withOutputParamNames("program", "maps", "info")
            .implementedAs([this](AcquireResult&& result, std::string name) {
                AcquireProgram(std::move(result), std::move(name));
            });
        getObject()
            .registerMethod("AcquireProgramWithOptions")
            .onInterface(INTERFACE_NAME)
            .withInputParamNames("name", "options")
            .withOutputParamNames("programs", "links", "maps", "info")
            .implementedAs([this](AcquireWithOptionsResult&& result, std::string name,
                                  std::map<std::string, sdbus::Variant> options) {
                AcquireProgramWithOptions(std::move(result), std::move(name), std::move(options));
            });
    }

    void AcquireProgram(AcquireResult&& result, std::string name)
    {
        auto shared = std::make_shared<AcquireResult>(std::move(result));
        acquire(shared, AcquireRequest{std::move(name), {}, false}, [](const AcquireResult& r, Handout& h) {
            // A broker-attached program has links, no program fd: this
            // reply has no place for them (closing ours detaches).
            if (!h.program) {
                r.returnError(to_dbus_error(make_error(
                    ErrorCode::InvalidParameter, "\"" + h.name + "\" is attached by the broker: use AcquireProgramWithOptions")));
                return;
            }
            auto program = taken_program(h);
            if (!program) {
                r.returnError(to_dbus_error(program.error()));
                return;
            }
            r.returnResults(std::move(*program), map_fds(h), DbusHandoutInfo{h});
        });
    }

    void AcquireProgramWithOptions(AcquireWithOptionsResult&& result, std::string name,
                                   std::map<std::string, sdbus::Variant> options)
    {
        auto shared = std::make_shared<AcquireWithOptionsResult>(std::move(result));
        auto request = acquire_request(std::move(name), options);
        if (!request) {
            shared->returnError(to_dbus_error(request.error()));
            return;
        }
        acquire(shared, std::move(*request), [](const AcquireWithOptionsResult& r, Handout& h) {
            std::map<std::string, sdbus::UnixFd> programs;
            if (h.program) {
                auto program = taken_program(h);
                if (!program) {
                    r.returnError(to_dbus_error(program.error()));
                    return;
                }
                programs.emplace(h.program_name, std::move(*program));
            }
            std::map<std::string, sdbus::UnixFd> links;
            for (auto& l : h.links)
                links.emplace(l.program, sdbus::UnixFd(l.fd.release(), sdbus::adopt_fd));
            r.returnResults(programs, links, map_fds(h), DbusHandoutInfo{h});
        });
    }

    // Both acquire methods decide alike and differ only in what they reply.
    template <typename ResultT, typename Send>
    void acquire(const std::shared_ptr<ResultT>& result, AcquireRequest request, Send send)
    {
        with_caller(result, [this, result, request = std::move(request), send](const RequestContext& ctx) {
            decide<Handout>(
                result, ctx,
                // By value: a call waiting for polkit outlives this body.
                [this, request](const RequestContext& c, const PolkitVerdict* v) { return broker_.acquire(c, request, v); },
                send);
        });
    }

    // The reply's own copy of the program fd, for sd-bus to adopt: the core
    // makes it for a D-Bus caller (handed_fd.h), so this only moves it.
    static Result<sdbus::UnixFd> taken_program(Handout& h)
    {
        UniqueFd fd = h.program.take();
        if (!fd)
            return fail(make_system_error("the hand-out carries no program fd of its own", errno));
        return sdbus::UnixFd(fd.release(), sdbus::adopt_fd);
    }

    static std::map<std::string, sdbus::UnixFd> map_fds(Handout& h)
    {
        std::map<std::string, sdbus::UnixFd> maps;
        for (auto& m : h.maps)
            maps.emplace(m.name, sdbus::UnixFd(m.fd.release(), sdbus::adopt_fd));
        return maps;
    }

    // options: "parameters" -> a{sv} of NAME -> t (u and b accepted), bounded
    // like the socket's method table; anything else is InvalidParameter.
    static Result<AcquireRequest> acquire_request(std::string name, const std::map<std::string, sdbus::Variant>& options)
    {
        AcquireRequest request{std::move(name), {}};
        for (const auto& [key, value] : options) {
            if (key != "parameters")
                return fail(ErrorCode::InvalidParameter, "unknown option \"" + cap_for_record(key, 64) + "\"");
            if (!value.containsValueOfType<std::map<std::string, sdbus::Variant>>())
                return fail(ErrorCode::InvalidParameter, "option \"parameters\" must be a{sv}");
            auto chosen = value.get<std::map<std::string, sdbus::Variant>>();
            if (chosen.size() > Limits::kChosenParameters)
                return fail(ErrorCode::InvalidParameter, "more than " + std::to_string(Limits::kChosenParameters) +
                                                             " parameters");
            for (const auto& [param, v] : chosen) {
                if (param.size() > 64)
                    return fail(ErrorCode::InvalidParameter, "a parameter name is longer than 64 bytes");
                if (v.containsValueOfType<std::uint64_t>())
                    request.parameters[param] = v.get<std::uint64_t>();
                else if (v.containsValueOfType<std::uint32_t>())
                    request.parameters[param] = v.get<std::uint32_t>();
                else if (v.containsValueOfType<bool>())
                    request.parameters[param] = v.get<bool>() ? 1 : 0;
                else
                    return fail(ErrorCode::InvalidParameter,
                                "parameter \"" + param + "\" must be t, u or b, not " + v.peekValueType());
            }
        }
        return request;
    }

    void ListPrograms(sdbus::Result<std::vector<ProgramRow>>&& result) override
    {
        auto shared = std::make_shared<sdbus::Result<std::vector<ProgramRow>>>(std::move(result));
        with_caller(shared, [this, shared](const RequestContext& ctx) {
            auto listed = broker_.list(ctx);
            if (!listed) {
                shared->returnError(to_dbus_error(listed.error()));
                return;
            }
            std::vector<ProgramRow> out;
            for (const auto& l : *listed)
                out.push_back(to_wire(l));
            shared->returnResults(out);
        });
    }

    FeatureMap GetFeatures() override
    {
        return returning_bus_errors([this] {
            FeatureMap out;
            for (const auto& p : broker_.features().probes)
                out.emplace(p.name, sdbus::Struct<bool, std::string>(p.available, p.detail));
            return out;
        });
    }
    FeatureMap Features() override { return GetFeatures(); }
    std::string Version() override { return std::string(kBrokerVersion); }

    std::string GetMetrics() override
    {
        return returning_bus_errors([this] { return broker_.metrics_text(); });
    }

    void Approve(sdbus::Result<std::string>&& result, std::string program, std::vector<std::string> users,
                 std::vector<std::string> groups, bool anyone, bool polkit) override
    {
        approve(std::move(result), ApproveRequest{std::move(program), std::move(users), std::move(groups), anyone, polkit, {}});
    }

    void ApproveSigner(sdbus::Result<std::string>&& result, std::string program, std::string signer,
                       std::vector<std::string> users, std::vector<std::string> groups, bool anyone, bool polkit) override
    {
        approve(std::move(result), ApproveRequest{std::move(program), std::move(users), std::move(groups), anyone, polkit,
                                                  std::move(signer)});
    }

    // Both approve methods reply with the grant's match value (hash or key id).
    void approve(sdbus::Result<std::string>&& result, ApproveRequest req)
    {
        auto shared = std::make_shared<sdbus::Result<std::string>>(std::move(result));
        with_caller(shared, [this, shared, req = std::move(req)](const RequestContext& ctx) {
            decide<policy::Grant>(
                shared, ctx, [this, req](const RequestContext& c, const PolkitVerdict* v) { return broker_.approve(c, req, v); },
                [](const sdbus::Result<std::string>& r, policy::Grant& g) { r.returnResults(g.match_value); });
        });
    }

    void Revoke(sdbus::Result<uint32_t>&& result, std::string program) override
    {
        revoke(std::move(result), std::move(program), [](const sdbus::Result<uint32_t>& r, RevokeSummary& s) {
            r.returnResults(static_cast<uint32_t>(s.removed_approvals));
        });
    }

    void RevokeWithSummary(sdbus::Result<uint32_t, uint32_t, uint32_t>&& result, std::string program) override
    {
        revoke(std::move(result), std::move(program),
               [](const sdbus::Result<uint32_t, uint32_t, uint32_t>& r, RevokeSummary& s) {
                   r.returnResults(static_cast<uint32_t>(s.removed_approvals), static_cast<uint32_t>(s.instances.cut),
                                   static_cast<uint32_t>(s.instances.uncut));
               });
    }

    // Both revoke methods decide alike and differ only in what they reply.
    template <typename ResultT, typename Send>
    void revoke(ResultT result, std::string program, Send send)
    {
        auto shared = std::make_shared<ResultT>(std::move(result));
        with_caller(shared, [this, shared, req = RevokeRequest{std::move(program)}, send](const RequestContext& ctx) {
            decide<RevokeSummary>(
                shared, ctx, [this, req](const RequestContext& c, const PolkitVerdict* v) { return broker_.revoke(c, req, v); },
                send);
        });
    }

    void Reload(sdbus::Result<>&& result) override
    {
        auto shared = std::make_shared<sdbus::Result<>>(std::move(result));
        with_caller(shared, [this, shared](const RequestContext& ctx) {
            decide<ReloadSummary>(
                shared, ctx, [this](const RequestContext& c, const PolkitVerdict* v) { return broker_.reload(c, v); },
                [](const sdbus::Result<>& r, ReloadSummary&) { r.returnResults(); });
        });
    }

    Broker& broker_;
    PolkitAuthority* polkit_;
    BusCallerCache callers_;
    PendingNameLookups names_;
};

Result<std::unique_ptr<DbusService>> DbusService::start(Broker& broker, bool use_polkit)
{
    std::unique_ptr<DbusService> s(new DbusService());
    try {
        s->connection_ = sdbus::createSystemBusConnection(kDbusBusName);
    } catch (const sdbus::Error& e) {
        return fail(ErrorCode::SystemError, "cannot serve on the system bus: " + e.getMessage());
    }
    s->wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!s->wake_fd_)
        return fail(make_system_error("eventfd", errno));
    if (use_polkit)
        s->polkit_ = std::make_unique<PolkitAuthority>(*s->connection_);
    s->object_ = std::make_unique<Broker1Object>(*s->connection_, broker, s->polkit_.get());
    s->thread_ = std::thread([raw = s.get()] { raw->run(); });
    return s;
}

DbusService::~DbusService()
{
    {
        std::lock_guard lock(tasks_mutex_);
        stopping_ = true;
    }
    std::uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof one);
    if (thread_.joinable())
        thread_.join();
    object_.reset();
    polkit_.reset();
}

void DbusService::post(std::function<void()> task)
{
    {
        std::lock_guard lock(tasks_mutex_);
        tasks_.push_back(std::move(task));
    }
    std::uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof one);
}

namespace {

// What escaped a handler or a task; the bus thread goes on serving.
void log_bus_failure(const std::exception& e)
{
    if (const auto* bus = dynamic_cast<const sdbus::Error*>(&e))
        log_error("D-Bus: " + bus->getName() + ": " + bus->getMessage());
    else
        log_error(std::string("D-Bus: ") + e.what());
}

}  // namespace

// The bus thread: sd-bus is not thread-safe, so every use of the connection
// (requests, replies, polkit calls, signals) happens here.
void DbusService::run()
{
    for (;;) {
        try {
            while (connection_->processPendingRequest()) {
            }
        } catch (const std::exception& e) {
            log_bus_failure(e);
        }
        std::vector<std::function<void()>> tasks;
        {
            std::lock_guard lock(tasks_mutex_);
            if (stopping_)
                return;
            tasks.swap(tasks_);
        }
        for (auto& t : tasks) {
            try {
                t();
            } catch (const std::exception& e) {
                log_bus_failure(e);
            }
        }
        if (!tasks.empty())
            continue;  // tasks may have queued messages: flush them first
        auto poll_data = connection_->getEventLoopPollData();
        pollfd fds[3] = {{poll_data.fd, poll_data.events, 0},
                         {wake_fd_.get(), POLLIN, 0},
                         {object_->names_ready_fd(), POLLIN, 0}};
        int timeout_ms = -1;
        if (auto rel = poll_data.getRelativeTimeout(); rel)
            timeout_ms = static_cast<int>(std::min<long long>(rel->count() / 1000 + 1, 60000));
        if (::poll(fds, 3, timeout_ms) < 0 && errno != EINTR) {
            log_error("D-Bus: poll failed");
            return;
        }
        if (fds[1].revents & POLLIN) {
            std::uint64_t n;
            (void)!::read(wake_fd_.get(), &n, sizeof n);
        }
        if (fds[2].revents & POLLIN) {
            try {
                object_->names_arrived();  // replies it sends are flushed at the top
            } catch (const std::exception& e) {
                log_bus_failure(e);
            }
        }
    }
}

void DbusService::program_approved(const std::string& program, const std::string& manifest_sha256)
{
    post([this, program, manifest_sha256] { object_->emitProgramApproved(program, manifest_sha256); });
}

void DbusService::program_revoked(const std::string& program)
{
    post([this, program] { object_->emitProgramRevoked(program); });
}

void DbusService::catalog_reloaded(std::size_t programs)
{
    post([this, programs] { object_->emitCatalogReloaded(static_cast<uint32_t>(programs)); });
}

}  // namespace bpfbroker::brokerd
