// Differential libFuzzer target for the AcquireProgram fast path
// (wire/acquire_codec.h): any input, read as a call frame and as a
// reply frame, must get the same verdict from the hand-written decoder and
// from the general nlohmann-json one: both accept (with equal values) or
// both refuse (with the same ErrorCode). Whatever they accept must encode to
// the same bytes on both encoders and decode back to the same value.
// And the daemon's entry to the fast path (brokerd::fast_acquire_call) must
// agree with its method table: whatever it takes, parse_message +
// parse_call + check_parameters take with the same values, and every plain
// AcquireProgram call the table takes that begins as the encoders write it,
// it takes too.
// Violations are reported with __builtin_trap().
#include "brokerd/varlink_method_table.h"
#include "wire/acquire_codec.h"
#include "wire/varlink_framing.h"

#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

using namespace bpfbroker;
using namespace bpfbroker::varlink;
using bpfbroker::fuzz::check;

std::string_view frame_of(const Result<std::string>& encoded)
{
    check(encoded.has_value() && !encoded->empty() && encoded->back() == '\0');
    return std::string_view(*encoded).substr(0, encoded->size() - 1);
}

template <typename T, typename Decode, typename Encode>
void differential(std::string_view frame, Decode fast_decode, Decode general_decode, Encode fast_encode,
                  Encode general_encode)
{
    Result<T> fast = fast_decode(frame);
    Result<T> general = general_decode(frame);
    check(fast.has_value() == general.has_value());
    if (!fast) {
        check(fast.error().code == general.error().code);
        return;
    }
    check(*fast == *general);
    auto a = fast_encode(*fast);
    auto b = general_encode(*fast);
    // Decoded strings are UTF-8, so both encoders succeed, unless the value
    // is too big for the limit: then both refuse.
    check(a.has_value() == b.has_value());
    if (!a) {
        check(a.error().code == ErrorCode::LimitExceeded && b.error().code == ErrorCode::LimitExceeded);
        return;
    }
    check(*a == *b);
    auto again = fast_decode(frame_of(a));
    check(again.has_value() && *again == *fast);
}

// Whether the general path, method table included, takes `frame` as a
// plain AcquireProgram call; its values in `out`.
bool table_accepts(std::string_view frame, AcquireCall& out)
{
    auto message = parse_message(frame);
    if (!message)
        return false;
    auto call = parse_call(*message);
    if (!call || call->oneway || call->more || call->upgrade)
        return false;
    auto found = brokerd::find_method(call->method);
    auto* const* spec = std::get_if<const brokerd::MethodSpec*>(&found);
    if (!spec || (*spec)->id != brokerd::MethodId::AcquireProgram || brokerd::check_parameters(**spec, call->parameters))
        return false;
    brokerd::CheckedParameters p(call->parameters);
    out.name = p.string("name");
    out.parameters = p.unsigned_map("parameters");
    return true;
}

void fast_entry_agrees_with_the_table(std::string_view frame)
{
    auto fast = brokerd::fast_acquire_call(frame);
    AcquireCall general;
    bool taken = table_accepts(frame, general);
    check(fast.has_value() == (taken && looks_like_acquire_call(frame)));
    if (fast)
        check(*fast == general);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view frame(reinterpret_cast<const char*>(data), size);
    differential<AcquireCall>(frame, decode_acquire_call, decode_acquire_call_via_json, encode_acquire_call,
                              encode_acquire_call_via_json);
    differential<AcquireReply>(frame, decode_acquire_reply, decode_acquire_reply_via_json, encode_acquire_reply,
                               encode_acquire_reply_via_json);
    fast_entry_agrees_with_the_table(frame);
    return 0;
}
