// libFuzzer target for what an unprivileged socket peer controls: the bytes
// of one Varlink frame, through the strict message parser, the call shape,
// the method table's lookup and its parameter spec check. Oracles besides
// the sanitizers: nothing throws; an accepted call's parameters are read
// back through CheckedParameters (whose accessors must not fail on anything
// the check let through); every error is a Varlink error reply naming what
// it refuses.
#include "brokerd/varlink_method_table.h"

#include "wire/varlink_framing.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

void require(bool condition)
{
    if (!condition)
        std::abort();
}

void read_back(const bpfbroker::brokerd::MethodSpec& spec, const nlohmann::json& parameters)
{
    using bpfbroker::brokerd::FieldType;
    bpfbroker::brokerd::CheckedParameters p(parameters);
    for (const auto& f : spec.parameters) {
        switch (f.type) {
        case FieldType::String:
            require(p.string(f.name).size() <= f.max_len);
            break;
        case FieldType::Bool:
            (void)p.boolean(f.name);
            break;
        case FieldType::NameList:
            require(p.names(f.name).size() <= f.max_items);
            break;
        case FieldType::UnsignedMap:
            require(p.unsigned_map(f.name).size() <= f.max_items);
            break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    namespace varlink = bpfbroker::varlink;
    namespace brokerd = bpfbroker::brokerd;
    auto message = varlink::parse_message(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!message)
        return 0;
    auto call = varlink::parse_call(*message);
    if (!call)
        return 0;
    auto found = brokerd::find_method(call->method);
    if (auto* err = std::get_if<brokerd::DispatchError>(&found)) {
        require(err->reply.contains("error"));
        return 0;
    }
    const auto& spec = *std::get<const brokerd::MethodSpec*>(found);
    if (auto bad = brokerd::check_parameters(spec, call->parameters)) {
        require(bad->reply["error"] == "org.varlink.service.InvalidParameter");
        require(bad->reply["parameters"]["parameter"].is_string());
        // The reply must be sendable (valid UTF-8 after encoding, bounded).
        require(bool(varlink::encode_message(bad->reply)));
        return 0;
    }
    read_back(spec, call->parameters);
    return 0;
}
