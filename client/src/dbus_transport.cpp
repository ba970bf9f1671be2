// D-Bus transport for Client; see dbus_transport.h.
#include "dbus_transport.h"

#include "dbus_program_info.h"

#include <bpfbroker/error_names.h>

#include <sdbus-c++/sdbus-c++.h>

#include <fcntl.h>

#include <tuple>

namespace bpfbroker {

namespace {

constexpr const char* kService = kDbusBusName;
constexpr const char* kPath = kDbusObjectPath;
constexpr const char* kInterface = kDbusInterface;
constexpr const char* kUnknownMethod = "org.freedesktop.DBus.Error.UnknownMethod";

using VariantMap = std::map<std::string, sdbus::Variant>;
using FdMap = std::map<std::string, sdbus::UnixFd>;

Error from_dbus(const sdbus::Error& e)
{
    // A method this daemon lacks (AcquireProgramWithOptions on an old one).
    if (e.getName() == kUnknownMethod)
        return make_error(ErrorCode::Unsupported, "bpfbrokerd does not offer this method (an older daemon?): " +
                                                      e.getMessage());
    auto code = error_code_from_dbus_name(e.getName()).value_or(ErrorCode::ProtocolError);
    return make_error(code, e.getMessage().empty() ? e.getName() : e.getMessage());
}

// Calls `member` with the arguments in `in` and stores its results in
// `out...`; a D-Bus error comes back as an Error.
template <typename... In, typename... Out>
Result<void> invoke(sdbus::IProxy& proxy, std::chrono::milliseconds timeout, const std::string& member,
                    const std::tuple<In...>& in, Out&... out)
{
    try {
        auto invoker = proxy.callMethod(member);
        invoker.onInterface(kInterface).withTimeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
        std::apply([&](const auto&... args) { invoker.withArguments(args...); }, in);
        invoker.storeResultsTo(out...);
    } catch (const sdbus::Error& e) {
        return fail(from_dbus(e));
    }
    return {};
}

// sdbus-c++ 1.2 duplicates received fds with plain dup(): each copy is
// taken over and marked FD_CLOEXEC so no received fd can leak into an
// exec'd child (one fcntl, not a second dup and a close).
Result<UniqueFd> take_cloexec(sdbus::UnixFd& fd)
{
    UniqueFd taken(fd.release());
    if (!taken)
        return fail(ErrorCode::ProtocolError, "the reply's fd is not valid");
    if (::fcntl(taken.get(), F_SETFD, FD_CLOEXEC) != 0)
        return fail(make_system_error("cannot mark a received fd close-on-exec", errno));
    return taken;
}

Result<std::map<std::string, UniqueFd>> take_all(FdMap& fds)
{
    std::map<std::string, UniqueFd> out;
    for (auto& [name, fd] : fds) {
        auto copy = take_cloexec(fd);
        if (!copy)
            return fail(std::move(copy).error());
        out.emplace(name, std::move(*copy));
    }
    return out;
}

template <typename T>
T variant_or(const VariantMap& m, const char* key, T fallback)
{
    auto it = m.find(key);
    if (it == m.end() || !it->second.containsValueOfType<T>())
        return fallback;
    return it->second.get<T>();
}

}  // namespace

DbusTransport::~DbusTransport() = default;

Result<std::unique_ptr<DbusTransport>> DbusTransport::connect(std::chrono::milliseconds timeout)
{
    std::unique_ptr<DbusTransport> t(new DbusTransport());
    try {
        t->connection_ = sdbus::createSystemBusConnection();
        t->proxy_ = sdbus::createProxy(*t->connection_, kService, kPath);
        t->proxy_->finishRegistration();
    } catch (const sdbus::Error& e) {
        return fail(ErrorCode::SystemError, "cannot connect to the system bus: " + e.getMessage());
    }
    t->timeout_ = timeout;
    return t;
}

Result<Program> DbusTransport::acquire(std::string_view name, const AcquireOptions& options, bool with_options)
{
    if (with_options)
        return acquire_with_options(name, options);
    sdbus::UnixFd program;
    FdMap maps;
    DbusProgramInfo info;
    if (auto called = invoke(*proxy_, timeout_, "AcquireProgram", std::tuple(std::string(name)), program, maps, info); !called)
        return fail(std::move(called).error());
    auto fd = take_cloexec(program);
    if (!fd)
        return fail(std::move(fd).error());
    auto map_fds = take_all(maps);
    if (!map_fds)
        return fail(std::move(map_fds).error());
    return Program(std::move(info.info), std::move(*fd), std::move(*map_fds));
}

Result<Program> DbusTransport::acquire_with_options(std::string_view name, const AcquireOptions& options)
{
    VariantMap request;
    if (!options.parameters.empty()) {
        VariantMap parameters;
        for (const auto& [k, v] : options.parameters)
            parameters.emplace(k, sdbus::Variant(v));
        request.emplace("parameters", sdbus::Variant(parameters));
    }
    FdMap programs, links, maps;
    DbusProgramInfo info;
    if (auto called = invoke(*proxy_, timeout_, "AcquireProgramWithOptions", std::tuple(std::string(name), request), programs, links,
               maps, info); !called)
        return fail(std::move(called).error());
    // Program carries one program fd; more would be a reply we cannot represent.
    if (programs.size() > 1)
        return fail(ErrorCode::ProtocolError, "malformed reply from bpfbrokerd: more than one program fd");
    UniqueFd program;
    if (!programs.empty()) {
        auto fd = take_cloexec(programs.begin()->second);
        if (!fd)
            return fail(std::move(fd).error());
        program = std::move(*fd);
    }
    auto link_fds = take_all(links);
    if (!link_fds)
        return fail(std::move(link_fds).error());
    auto map_fds = take_all(maps);
    if (!map_fds)
        return fail(std::move(map_fds).error());
    return Program(std::move(info.info), std::move(program), std::move(*map_fds), std::move(*link_fds));
}

Result<std::vector<ProgramEntry>> DbusTransport::list_programs()
{
    // (name, fields): fields this client does not know are ignored, missing ones stay empty.
    std::vector<sdbus::Struct<std::string, VariantMap>> programs;
    if (auto called = invoke(*proxy_, timeout_, "ListPrograms", std::tuple(), programs); !called)
        return fail(std::move(called).error());
    std::vector<ProgramEntry> out;
    for (const auto& row : programs) {
        const auto& f = std::get<1>(row);
        ProgramEntry e;
        e.name = std::get<0>(row);
        e.version = variant_or(f, "version", std::string());
        e.description = variant_or(f, "description", std::string());
        e.state = variant_or(f, "state", std::string());
        e.instance = variant_or(f, "instance", std::string());
        e.allowed = variant_or(f, "allowed", false);
        e.needs_polkit = variant_or(f, "needs_polkit", false);
        e.cut_live = variant_or(f, "cut_live", false);
        e.error = variant_or(f, "error", std::string());
        e.reason = variant_or(f, "reason", std::string());
        out.push_back(std::move(e));
    }
    return out;
}

Result<std::vector<Feature>> DbusTransport::features()
{
    std::map<std::string, sdbus::Struct<bool, std::string>> features;
    if (auto called = invoke(*proxy_, timeout_, "GetFeatures", std::tuple(), features); !called)
        return fail(std::move(called).error());
    std::vector<Feature> out;
    for (const auto& [name, v] : features)
        out.push_back({name, std::get<0>(v), std::get<1>(v)});
    return out;
}

Result<std::string> DbusTransport::metrics()
{
    std::string text;
    if (auto called = invoke(*proxy_, timeout_, "GetMetrics", std::tuple(), text); !called)
        return fail(std::move(called).error());
    return text;
}

Result<std::string> DbusTransport::approve(std::string_view program, const ApproveOptions& o)
{
    std::string match;  // the manifest hash, or the signer's key id
    auto called = o.signer.empty()
                      ? invoke(*proxy_, timeout_, "Approve",
                               std::tuple(std::string(program), o.users, o.groups, o.anyone, o.polkit), match)
                      : invoke(*proxy_, timeout_, "ApproveSigner",
                               std::tuple(std::string(program), o.signer, o.users, o.groups, o.anyone, o.polkit), match);
    if (!called)
        return fail(std::move(called).error());
    return match;
}

Result<RevokeResult> DbusTransport::revoke(std::string_view program)
{
    std::uint32_t removed = 0;
    std::uint32_t cut = 0;
    std::uint32_t uncut = 0;
    if (auto called = invoke(*proxy_, timeout_, "RevokeWithSummary", std::tuple(std::string(program)), removed, cut, uncut);
        !called)
        return fail(std::move(called).error());
    return RevokeResult{removed, cut, uncut};
}

Result<void> DbusTransport::reload()
{
    if (auto called = invoke(*proxy_, timeout_, "Reload", std::tuple()); !called)
        return fail(std::move(called).error());
    return {};
}

Result<Client> Client::connect_dbus(std::chrono::milliseconds timeout)
{
    auto t = DbusTransport::connect(timeout);
    if (!t)
        return fail(std::move(t).error());
    return Client(std::move(*t));
}

}  // namespace bpfbroker
