// A strict, allocation-light JSON reader for the hand-written decoders of
// the hot Varlink messages (acquire_codec.h). It accepts exactly what the
// general path (varlink::parse_message: nlohmann-json behind a strict SAX
// pass) accepts: RFC 8259 JSON, UTF-8 checked as nlohmann checks it, numbers
// that overflow a double refused, no byte-order mark, no key repeated within
// an object, containers nested at most kMaxJsonDepth deep. A differential
// fuzzer (fuzz/acquire_codec_fuzzer.cpp) holds the two readers to that.
//
// The decoder drives it: it asks for the value it expects next. The first
// syntax fault fails the scanner for good (error() says why); a value of the
// wrong type is not a syntax fault, so the decoder can note it and skip it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <forward_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace bpfbroker::varlink {

// The length of the UTF-8 sequence `bytes` begins with (a byte >= 0x80
// first), by RFC 3629's table: no overlong forms, no surrogates, nothing
// above U+10FFFF. 0 when it is not one.
[[nodiscard]] std::size_t utf8_sequence_length(std::string_view bytes) noexcept;

// A byte that stands for itself inside a JSON string, read or written:
// printable ASCII other than '"' and '\\'. Runs of them are copied whole.
[[nodiscard]] constexpr bool is_plain_json_byte(unsigned char c) noexcept
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

enum class JsonKind { Object, Array, String, Number, Boolean, Null, Invalid };

// The keys seen in one object, to refuse a repeated one.
class JsonKeySet {
public:
    // False when `key` was seen before. A `stable` key outlives the set
    // (a view into the message) and is kept as a view, not copied: a
    // message's small objects allocate nothing for their keys.
    bool insert(std::string_view key, bool stable = false);

private:
    static constexpr std::size_t kLinear = 16;  // beyond this, a tree (no quadratic cost)
    std::array<std::string_view, kLinear> small_{};
    std::size_t small_count_ = 0;
    std::forward_list<std::string> owned_;  // what the unstable views in small_ see
    std::set<std::string, std::less<>> large_;
};

class JsonScanner {
public:
    explicit JsonScanner(std::string_view text) : text_(text) {}

    // What the next value is, from its first byte (after whitespace).
    [[nodiscard]] JsonKind peek();

    // Reads an object; `member(key)` is called for each key and must read
    // the value (or skip_value()) and return false to stop. Repeated keys and
    // nesting too deep fail the scanner.
    template <typename Member>
    bool object(Member&& member)
    {
        if (!enter('{'))
            return false;
        JsonKeySet keys;
        if (consume('}'))
            return leave();
        std::string key;
        do {
            if (!string(key))
                return false;
            // The key as it stands in the text, when it is written there
            // unescaped: the set keeps that view.
            const std::string_view raw =
                pos_ > key.size() ? text_.substr(pos_ - 1 - key.size(), key.size()) : std::string_view();
            const bool in_text = raw == key;
            if (!expect(':'))
                return false;
            if (!keys.insert(in_text ? raw : std::string_view(key), in_text))
                return fault("duplicate key \"" + key + "\"");
            if (!member(key) || failed())
                return false;
        } while (consume(','));
        return expect('}') && leave();
    }

    bool string(std::string& out);
    // A string, and whether it equals `expected`: compared in place when it
    // is plain ASCII (no escape), decoded first otherwise. Checked as
    // strictly as string().
    bool string_equals(std::string_view expected, bool& equal);
    // A JSON number; `out` is set only when it is a non-negative integer that
    // fits in 64 bits (any other valid number leaves it nullopt).
    bool number(std::optional<std::uint64_t>& out);
    bool boolean(bool& out);
    // Any value, checked as strictly as the rest.
    bool skip_value();
    // The text started with a byte-order mark, or holds more than one value:
    // call after the top-level value.
    bool finish();
    // Call before the top-level value.
    bool start();

    [[nodiscard]] bool failed() const noexcept { return !error_.empty(); }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    bool fault(std::string why);

private:
    void skip_whitespace();
    bool consume(char c);
    bool expect(char c);
    bool enter(char open);
    bool leave();
    bool literal(std::string_view word);
    bool utf8_sequence(std::string& out);
    bool escape(std::string& out);
    bool hex4(std::uint32_t& out);
    bool skip_array();

    std::string_view text_;
    std::size_t pos_ = 0;
    std::size_t depth_ = 0;
    std::string error_;
};

}  // namespace bpfbroker::varlink
