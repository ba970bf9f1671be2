// D-Bus transport for Client; see dbus_transport.h.
#include "dbus_transport.h"

#include <bpfbroker/error_names.h>

#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>

#include <fcntl.h>

namespace bpfbroker {

namespace {

constexpr const char* kService = "org.bpfbroker.Broker1";
constexpr const char* kPath = "/org/bpfbroker/Broker1";
constexpr const char* kInterface = "org.bpfbroker.Broker1";

Error from_dbus(const sdbus::Error& e)
{
    auto code = error_code_from_dbus_name(e.getName()).value_or(ErrorCode::ProtocolError);
    return make_error(code, e.getMessage().empty() ? e.getName() : e.getMessage());
}

// sdbus-c++ 1.2 duplicates received fds with plain dup(): take each one over
// with F_DUPFD_CLOEXEC so no received fd can leak into an exec'd child.
Result<UniqueFd> take_cloexec(const sdbus::UnixFd& fd)
{
    UniqueFd copy = UniqueFd::dup_cloexec(fd.get());
    if (!copy)
        return fail(make_system_error("cannot duplicate a received fd", errno));
    return copy;
}

template <typename T>
T variant_or(const std::map<std::string, sdbus::Variant>& m, const char* key, T fallback)
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

Result<Transport::Reply> DbusTransport::call(std::string_view member, const std::string& parameters_json)
{
    auto params = nlohmann::json::parse(parameters_json, nullptr, false);
    if (params.is_discarded() || !params.is_object())
        return fail(ErrorCode::InvalidParameter, "parameters are not a JSON object");
    auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(timeout_);
    Reply reply;
    nlohmann::json out = nlohmann::json::object();
    try {
        if (member == "AcquireProgram") {
            sdbus::UnixFd program;
            std::map<std::string, sdbus::UnixFd> maps;
            std::map<std::string, sdbus::Variant> info;
            proxy_->callMethod("AcquireProgram").onInterface(kInterface).withTimeout(timeout)
                .withArguments(params.value("name", std::string()))
                .storeResultsTo(program, maps, info);
            auto fd = take_cloexec(program);
            if (!fd)
                return fail(std::move(fd).error());
            reply.fds.push_back(std::move(*fd));
            nlohmann::json map_index = nlohmann::json::object();
            for (const auto& [name, map_fd] : maps) {
                auto copy = take_cloexec(map_fd);
                if (!copy)
                    return fail(std::move(copy).error());
                map_index[name] = reply.fds.size();
                reply.fds.push_back(std::move(*copy));
            }
            nlohmann::json access = nlohmann::json::object();
            for (const auto& [k, v] : variant_or(info, "map_access", std::map<std::string, std::string>{}))
                access[k] = v;
            out = {{"program", 0},
                   {"maps", map_index},
                   {"info",
                    {{"name", variant_or(info, "name", std::string())},
                     {"version", variant_or(info, "version", std::string())},
                     {"type", variant_or(info, "type", std::string())},
                     {"instance", variant_or(info, "instance", std::string())},
                     {"id", variant_or(info, "id", std::uint32_t{0})},
                     {"tag", variant_or(info, "tag", std::string())},
                     {"map_access", access}}}};
        } else if (member == "ListPrograms") {
            std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, bool, bool, std::string, std::string>> programs;
            proxy_->callMethod("ListPrograms").onInterface(kInterface).withTimeout(timeout).storeResultsTo(programs);
            nlohmann::json list = nlohmann::json::array();
            for (const auto& p : programs)
                list.push_back({{"name", std::get<0>(p)}, {"version", std::get<1>(p)}, {"description", std::get<2>(p)},
                                {"state", std::get<3>(p)}, {"instance", std::get<4>(p)}, {"allowed", std::get<5>(p)},
                                {"needs_polkit", std::get<6>(p)}, {"error", std::get<7>(p)}, {"reason", std::get<8>(p)}});
            out["programs"] = list;
        } else if (member == "GetFeatures") {
            std::map<std::string, sdbus::Struct<bool, std::string>> features;
            proxy_->callMethod("GetFeatures").onInterface(kInterface).withTimeout(timeout).storeResultsTo(features);
            nlohmann::json f = nlohmann::json::object();
            for (const auto& [name, v] : features)
                f[name] = {{"available", std::get<0>(v)}, {"detail", std::get<1>(v)}};
            out["features"] = f;
        } else if (member == "Approve" && params.contains("signer")) {
            std::string signer;
            proxy_->callMethod("ApproveSigner").onInterface(kInterface).withTimeout(timeout)
                .withArguments(params.value("program", std::string()), params.value("signer", std::string()),
                               params.value("users", std::vector<std::string>{}),
                               params.value("groups", std::vector<std::string>{}), params.value("anyone", false),
                               params.value("polkit", false))
                .storeResultsTo(signer);
            out = {{"program", params.value("program", std::string())}, {"signer", signer}};
        } else if (member == "Approve") {
            std::string hash;
            proxy_->callMethod("Approve").onInterface(kInterface).withTimeout(timeout)
                .withArguments(params.value("program", std::string()),
                               params.value("users", std::vector<std::string>{}),
                               params.value("groups", std::vector<std::string>{}), params.value("anyone", false),
                               params.value("polkit", false))
                .storeResultsTo(hash);
            out = {{"program", params.value("program", std::string())}, {"manifest_sha256", hash}};
        } else if (member == "Revoke") {
            std::uint32_t removed = 0;
            proxy_->callMethod("Revoke").onInterface(kInterface).withTimeout(timeout)
                .withArguments(params.value("program", std::string()))
                .storeResultsTo(removed);
            out = {{"program", params.value("program", std::string())}, {"removed_approvals", removed}};
        } else if (member == "Reload") {
            proxy_->callMethod("Reload").onInterface(kInterface).withTimeout(timeout);
        } else {
            return fail(ErrorCode::InvalidParameter, "unknown method " + std::string(member));
        }
    } catch (const sdbus::Error& e) {
        return fail(from_dbus(e));
    }
    reply.json = out.dump();
    return reply;
}

Result<Client> Client::connect_dbus(std::chrono::milliseconds timeout)
{
    auto t = DbusTransport::connect(timeout);
    if (!t)
        return fail(std::move(t).error());
    return Client(std::move(*t));
}

}  // namespace bpfbroker
