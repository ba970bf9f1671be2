// The Varlink method table of the direct socket, in the shape of systemd's
// dispatch tables: each method of org.varlink.service and
// org.bpfbroker.Broker with its parameter spec, whether it may be called
// oneway, and whether it is an admin method. Looking a call up and checking
// its parameters against the spec happens here, before any handler runs:
// an unknown interface is InterfaceNotFound, an unknown method of a known
// interface MethodNotFound, and an unknown, missing or mistyped field
// InvalidParameter naming the field (the spec's "parameter"). Data only, no
// Broker, so the fuzzer drives exactly what an unprivileged caller reaches.
#pragma once

#include "wire/acquire_codec.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bpfbroker::brokerd {

inline constexpr std::string_view kVarlinkServiceInterface = "org.varlink.service";

enum class MethodId {
    GetInfo,
    GetInterfaceDescription,
    AcquireProgram,
    ListPrograms,
    GetFeatures,
    GetMetrics,
    Approve,
    Revoke,
    Reload,
    AttachRing,
};

enum class FieldType {
    String,      // at most max_len bytes
    Bool,
    NameList,    // array (max_items) of strings (max_len) or unsigned ids
    UnsignedMap, // object (max_items) of name (max_len) -> unsigned integer
    Unsigned,    // one unsigned integer of at most max_len
};

struct FieldSpec {
    std::string_view name;
    FieldType type;
    bool required = false;
    std::size_t max_len = 64;
    std::size_t max_items = 0;
};

struct MethodSpec {
    MethodId id;
    std::string_view interface;
    std::string_view member;
    std::span<const FieldSpec> parameters;
    bool oneway_allowed = false;  // a oneway call of any other method is dropped unanswered, without acting
    bool admin = false;           // decided by policy::decide_admin in the core
};

std::span<const MethodSpec> varlink_methods();

// A call's parameters once they match the spec: typed accessors that cannot fail.
class CheckedParameters {
public:
    explicit CheckedParameters(const nlohmann::json& parameters) : p_(parameters) {}
    [[nodiscard]] std::string string(std::string_view name) const;  // "" when absent
    [[nodiscard]] bool boolean(std::string_view name) const;        // false when absent
    [[nodiscard]] std::vector<std::string> names(std::string_view name) const;
    [[nodiscard]] std::map<std::string, std::uint64_t> unsigned_map(std::string_view name) const;
    [[nodiscard]] std::uint64_t unsigned_value(std::string_view name) const;  // 0 when absent

private:
    const nlohmann::json& p_;
};

struct DispatchError {
    nlohmann::json reply;  // the Varlink error message
};

// The spec for a fully qualified method, or the error reply for it.
std::variant<const MethodSpec*, DispatchError> find_method(std::string_view method);

// nullopt when `parameters` (an object) matches `spec`; else the
// InvalidParameter reply naming the first offending field.
std::optional<DispatchError> check_parameters(const MethodSpec& spec, const nlohmann::json& parameters);

// The fast path's entry: an AcquireProgram call read by the fast codec
// (varlink::decode_acquire_call), returned only when the table would take it
// as it stands: not oneway, no "more"/"upgrade", name and parameters within
// the spec's bounds. nullopt: the frame takes the general path, which gives
// it the reply (or refusal) the table gives every frame. Whatever this
// accepts, parse_message + parse_call + check_parameters accept with the
// same values (fuzz/acquire_codec_fuzzer.cpp holds it to that).
std::optional<varlink::AcquireCall> fast_acquire_call(std::string_view frame);

}  // namespace bpfbroker::brokerd
