// org.bpfbroker.Broker1 on D-Bus; see dbus_service.h.
#include "brokerd/dbus_service.h"

#include "brokerd/log.h"
#include "brokerd/peer_identity.h"
#include "brokerd/polkit_authority.h"

#include "broker1_adaptor.h"  // generated from org.bpfbroker.Broker1.xml

#include <bpfbroker/error_names.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace bpfbroker::brokerd {

namespace {

constexpr const char* kTransport = "dbus";

sdbus::Error to_dbus_error(const Error& e)
{
    return sdbus::Error(dbus_error_name(e.code), e.message);
}

}  // namespace

using AcquireResult = sdbus::Result<sdbus::UnixFd, std::map<std::string, sdbus::UnixFd>, std::map<std::string, sdbus::Variant>>;

// (name, version, description, state, instance, allowed, needs_polkit, error, reason)
using ProgramRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string, bool, bool, std::string, std::string>;

class Broker1Object final : public sdbus::AdaptorInterfaces<org::bpfbroker::Broker1_adaptor> {
public:
    Broker1Object(sdbus::IConnection& connection, Broker& broker, PolkitAuthority* polkit)
        : AdaptorInterfaces(connection, kObjectPath), broker_(broker), polkit_(polkit)
    {
        registerAdaptor();
    }
    ~Broker1Object() { unregisterAdaptor(); }

private:
    // The caller as the bus recorded it at connect: its euid (sd-bus takes
    // it from the bus driver's UnixUserID, not from /proc) and bus name.
    struct Caller {
        policy::Peer peer;
        std::string bus_name;
    };

    Caller caller() const
    {
        const auto* msg = getObject().getCurrentlyProcessedMessage();
        return Caller{peer_from_uid(msg->getCredsEuid(), msg->getCredsPid()), msg->getSender()};
    }

    // Runs `action` if the caller may administer: root, or polkit agrees.
    template <typename ResultT>
    void as_admin(const Caller& c, const std::string& method, const std::string& program,
                  const std::shared_ptr<ResultT>& result, std::function<void()> action)
    {
        if (c.peer.uid == 0) {
            action();
            return;
        }
        auto refuse = [this, c, method, program, result](const std::string& why) {
            broker_.audit(method, kTransport, program, c.peer, false, "PermissionDenied", why);
            result->returnError(to_dbus_error(make_error(ErrorCode::PermissionDenied, why)));
        };
        if (!polkit_) {
            refuse("only root may administer bpfbroker: polkit is not in use");
            return;
        }
        polkit_->check(c.peer.uid, c.bus_name, kPolkitActionManage, [action, refuse](bool allowed, std::string why) {
            if (allowed)
                action();
            else
                refuse(why);
        });
    }

    void AcquireProgram(AcquireResult&& result, std::string name) override
    {
        auto c = caller();
        auto auth = broker_.authorize(c.peer, name, kTransport);
        if (!auth.decision.allowed) {
            result.returnError(to_dbus_error(make_error(auth.decision.code, auth.decision.reason)));
            return;
        }
        auto shared = std::make_shared<AcquireResult>(std::move(result));
        if (!auth.decision.needs_polkit || !polkit_) {
            // Without polkit, hand_out itself refuses a grant that asks for it.
            reply_with_handout(*shared, broker_.hand_out(c.peer, auth, kTransport, false));
            return;
        }
        polkit_->check(c.peer.uid, c.bus_name, kPolkitActionAcquire, [this, shared, c, name](bool allowed, std::string why) {
            if (!allowed) {
                auto reason = "the grant for \"" + name + "\" requires polkit authorization: " + why;
                broker_.audit("acquire", kTransport, name, c.peer, false, "PermissionDenied", reason);
                shared->returnError(to_dbus_error(make_error(ErrorCode::PermissionDenied, reason)));
                return;
            }
            // The policy may have changed while polkit decided (an interactive
            // check can take minutes): decide again on the current policy.
            auto fresh = broker_.authorize(c.peer, name, kTransport);
            reply_with_handout(*shared, broker_.hand_out(c.peer, fresh, kTransport, true));
        });
    }

    static void reply_with_handout(const AcquireResult& result, Result<Handout> h)
    {
        if (!h) {
            result.returnError(to_dbus_error(h.error()));
            return;
        }
        std::map<std::string, sdbus::UnixFd> maps;
        for (auto& [map_name, fd] : h->maps)
            maps.emplace(map_name, sdbus::UnixFd(fd.release(), sdbus::adopt_fd));
        std::map<std::string, sdbus::Variant> info{
            {"name", sdbus::Variant(h->name)},       {"version", sdbus::Variant(h->version)},
            {"type", sdbus::Variant(h->type)},       {"instance", sdbus::Variant(h->instance)},
            {"id", sdbus::Variant(h->prog_id)},      {"tag", sdbus::Variant(h->tag)}};
        std::map<std::string, std::string> access(h->map_access.begin(), h->map_access.end());
        info.emplace("map_access", sdbus::Variant(access));
        result.returnResults(sdbus::UnixFd(h->program.release(), sdbus::adopt_fd), maps, info);
    }

    std::vector<ProgramRow> ListPrograms() override
    {
        auto c = caller();
        std::vector<ProgramRow> out;
        for (const auto& l : broker_.list(c.peer))
            out.emplace_back(l.name, l.version, l.description, l.state, l.instance, l.allowed, l.needs_polkit, l.code, l.reason);
        return out;
    }

    std::map<std::string, sdbus::Struct<bool, std::string>> GetFeatures() override
    {
        std::map<std::string, sdbus::Struct<bool, std::string>> out;
        for (const auto& p : broker_.features().probes)
            out.emplace(p.name, sdbus::Struct<bool, std::string>(p.available, p.detail));
        return out;
    }

    void Approve(sdbus::Result<std::string>&& result, std::string program, std::vector<std::string> users,
                 std::vector<std::string> groups, bool anyone, bool polkit) override
    {
        approve(std::move(result), ApproveRequest{program, users, groups, anyone, polkit, {}});
    }

    void ApproveSigner(sdbus::Result<std::string>&& result, std::string program, std::string signer,
                       std::vector<std::string> users, std::vector<std::string> groups, bool anyone, bool polkit) override
    {
        approve(std::move(result), ApproveRequest{program, users, groups, anyone, polkit, signer});
    }

    // Both approve methods reply with the grant's match value (hash or key id).
    void approve(sdbus::Result<std::string>&& result, ApproveRequest req)
    {
        auto c = caller();
        auto shared = std::make_shared<sdbus::Result<std::string>>(std::move(result));
        as_admin(c, "approve", req.program, shared, [this, shared, c, req] {
            auto g = broker_.approve(c.peer, req, kTransport);
            if (!g)
                shared->returnError(to_dbus_error(g.error()));
            else
                shared->returnResults(g->match_value);
        });
    }

    void Revoke(sdbus::Result<uint32_t>&& result, std::string program) override
    {
        auto c = caller();
        auto shared = std::make_shared<sdbus::Result<uint32_t>>(std::move(result));
        as_admin(c, "revoke", program, shared, [this, shared, c, program] {
            auto removed = broker_.revoke(c.peer, program, kTransport);
            if (!removed)
                shared->returnError(to_dbus_error(removed.error()));
            else
                shared->returnResults(static_cast<uint32_t>(*removed));
        });
    }

    void Reload(sdbus::Result<>&& result) override
    {
        auto c = caller();
        auto shared = std::make_shared<sdbus::Result<>>(std::move(result));
        as_admin(c, "reload", "", shared, [this, shared, c] {
            auto r = broker_.reload_as(c.peer, kTransport);
            if (!r)
                shared->returnError(to_dbus_error(r.error()));
            else
                shared->returnResults();
        });
    }

    Broker& broker_;
    PolkitAuthority* polkit_;
};

Result<std::unique_ptr<DbusService>> DbusService::start(Broker& broker, bool use_polkit)
{
    std::unique_ptr<DbusService> s(new DbusService());
    try {
        s->connection_ = sdbus::createSystemBusConnection(kBusName);
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

// The bus thread: sd-bus is not thread-safe, so every use of the connection
// (requests, replies, polkit calls, signals) happens here.
void DbusService::run()
{
    for (;;) {
        try {
            while (connection_->processPendingRequest()) {
            }
        } catch (const sdbus::Error& e) {
            log_error("D-Bus: " + e.getName() + ": " + e.getMessage());
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
            } catch (const sdbus::Error& e) {
                log_error("D-Bus: " + e.getName() + ": " + e.getMessage());
            }
        }
        if (!tasks.empty())
            continue;  // tasks may have queued messages: flush them first
        auto poll_data = connection_->getEventLoopPollData();
        pollfd fds[2] = {{poll_data.fd, poll_data.events, 0}, {wake_fd_.get(), POLLIN, 0}};
        int timeout_ms = -1;
        if (auto rel = poll_data.getRelativeTimeout(); rel)
            timeout_ms = static_cast<int>(std::min<long long>(rel->count() / 1000 + 1, 60000));
        if (::poll(fds, 2, timeout_ms) < 0 && errno != EINTR) {
            log_error("D-Bus: poll failed");
            return;
        }
        if (fds[1].revents & POLLIN) {
            std::uint64_t n;
            (void)!::read(wake_fd_.get(), &n, sizeof n);
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
