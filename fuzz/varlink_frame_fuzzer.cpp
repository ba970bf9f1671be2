// libFuzzer target for the wire code a stranger's bytes reach first: the
// Varlink FrameReader (fed in chunk splits the input chooses), then
// parse_message, parse_call and parse_reply on every frame it yields.
//
// Input: byte 0 picks the reader's size limit, byte 1 seeds the chunk
// splits; the rest is the stream. Properties (violations __builtin_trap()):
//  - how the stream is cut into reads changes nothing: the frames and the
//    verdict are those of one whole read;
//  - the reader never holds more than one read plus its limit, and an
//    oversized frame fails it for good;
//  - a parsed message re-encodes (encode_message) to bytes that parse back
//    to the same message; parse_call/parse_reply results have the shape
//    their callers rely on.
#include "wire/varlink_framing.h"

#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace bpfbroker;
using namespace bpfbroker::varlink;
using bpfbroker::fuzz::check;

// What a reader made of the stream: each frame's text, then how it ended.
struct Outcome {
    std::vector<std::string> frames;
    std::optional<ErrorCode> failure;
    bool operator==(const Outcome&) const = default;
};

void check_shapes(const nlohmann::json& message)
{
    auto encoded = encode_message(message, kMaxReplySize);
    if (encoded) {
        std::string_view text(*encoded);
        check(text.back() == '\0');
        auto again = parse_message(text.substr(0, text.size() - 1));
        check(again && *again == message);
    }
    if (auto call = parse_call(message)) {
        check(call->parameters.is_object());
        auto dot = call->method.rfind('.');
        check(dot != std::string::npos && dot > 0 && dot + 1 < call->method.size());
    }
    if (auto reply = parse_reply(message)) {
        check(reply->parameters.is_object());
        if (reply->error)
            check(!reply->error->empty() && !error_from_reply(*reply).message.empty());
    }
}

// Drains the frames the reader holds; false once it has failed. Frames are
// parsed in one of the two passes only (`parse`): the same text gets the
// same verdict, and the two passes compare texts.
bool drain(FrameReader& reader, Outcome& out, bool parse)
{
    for (;;) {
        auto frame = reader.next_frame();
        if (!frame) {
            out.failure = frame.error().code;
            return false;
        }
        if (!frame->has_value())
            return true;
        if (parse) {
            auto message = parse_message(**frame);
            if (message)
                check_shapes(*message);
        }
        out.frames.push_back(std::move(**frame));
    }
}

Outcome read_stream(std::string_view stream, std::size_t limit, std::uint32_t split_seed, bool whole)
{
    FrameReader reader(limit);
    Outcome out;
    std::size_t pos = 0;
    while (pos < stream.size()) {
        split_seed = split_seed * 1103515245u + 12345u;
        std::size_t chunk = whole ? stream.size() : 1 + (split_seed >> 16) % 97;
        chunk = std::min(chunk, stream.size() - pos);
        auto fed = reader.feed(stream.substr(pos, chunk));
        pos += chunk;
        if (!fed) {
            out.failure = fed.error().code;
            // Failed for good: later bytes and later reads fail the same way.
            check(reader.failed() && !reader.feed(std::string_view("{}\0", 3)) && !reader.next_frame() && !reader.finish());
            return out;
        }
        if (!drain(reader, out, !whole))
            return out;
        // After draining, only the unfinished frame is kept, within the limit.
        check(reader.buffered_bytes() <= limit);
    }
    if (!reader.finish())
        out.failure = ErrorCode::ProtocolError;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size < 2)
        return 0;
    static constexpr std::size_t kLimits[] = {1, 16, 256, 4096, kDefaultMaxMessageSize};
    std::size_t limit = kLimits[data[0] % std::size(kLimits)];
    std::uint32_t seed = data[1];
    std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

    Outcome whole = read_stream(stream, limit, seed, true);
    Outcome split = read_stream(stream, limit, seed, false);
    // Oversized frames fail both readers alike. A whole read fails before it
    // hands out the frames ahead of the oversized one (feed() keeps nothing
    // of a read it refuses), split reads hand some of them out first: then
    // the whole read's frames are a prefix of the split reads'.
    check(whole.failure == split.failure);
    if (whole.failure == ErrorCode::LimitExceeded) {
        check(whole.frames.size() <= split.frames.size());
        for (std::size_t i = 0; i < whole.frames.size(); ++i)
            check(whole.frames[i] == split.frames[i]);
    } else {
        check(whole == split);
    }
    for (const auto& f : split.frames)
        check(f.size() <= limit && f.find('\0') == std::string::npos);
    return 0;
}
