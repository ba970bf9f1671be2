// The strict JSON reader of the hot-message decoders; see json_scanner.h.
#include "wire/json_scanner.h"

#include "base/strict_json.h"
#include "wire/varlink_framing.h"

#include <clocale>
#include <cmath>
#include <cstdlib>

namespace bpfbroker::varlink {

std::size_t utf8_sequence_length(std::string_view bytes) noexcept
{
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
    if (bytes.empty())
        return 0;
    unsigned char lead = byte(0);
    std::size_t length;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0)
            lo = 0xA0;
        else if (lead == 0xED)
            hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0)
            lo = 0x90;
        else if (lead == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (bytes.size() < length)
        return 0;
    for (std::size_t i = 1; i < length; ++i) {
        unsigned char b = byte(i);
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return length;
}

bool JsonKeySet::insert(std::string_view key, bool stable)
{
    if (!large_.empty())
        return large_.emplace(key).second;
    for (std::size_t i = 0; i < small_count_; ++i)
        if (small_[i] == key)
            return false;
    if (small_count_ < kLinear) {
        if (!stable)
            key = owned_.emplace_front(key);
        small_[small_count_++] = key;
        return true;
    }
    for (std::size_t i = 0; i < small_count_; ++i)
        large_.emplace(small_[i]);
    small_count_ = 0;
    owned_.clear();
    return large_.emplace(key).second;
}

bool JsonScanner::fault(std::string why)
{
    if (error_.empty())
        error_ = std::move(why) + " at byte " + std::to_string(pos_);
    return false;
}

void JsonScanner::skip_whitespace()
{
    while (pos_ < text_.size()) {
        char c = text_[pos_];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        ++pos_;
    }
}

bool JsonScanner::consume(char c)
{
    skip_whitespace();
    if (pos_ < text_.size() && text_[pos_] == c) {
        ++pos_;
        return true;
    }
    return false;
}

bool JsonScanner::expect(char c)
{
    if (failed())
        return false;
    if (consume(c))
        return true;
    return fault(std::string("invalid JSON: expected '") + c + "'");
}

JsonKind JsonScanner::peek()
{
    skip_whitespace();
    if (failed() || pos_ >= text_.size())
        return JsonKind::Invalid;
    switch (text_[pos_]) {
    case '{': return JsonKind::Object;
    case '[': return JsonKind::Array;
    case '"': return JsonKind::String;
    case 't':
    case 'f': return JsonKind::Boolean;
    case 'n': return JsonKind::Null;
    case '-': return JsonKind::Number;
    default:
        return text_[pos_] >= '0' && text_[pos_] <= '9' ? JsonKind::Number : JsonKind::Invalid;
    }
}

bool JsonScanner::enter(char open)
{
    if (!expect(open))
        return false;
    if (depth_ >= kMaxJsonDepth)
        return fault("JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    ++depth_;
    return true;
}

bool JsonScanner::leave()
{
    --depth_;
    return true;
}

bool JsonScanner::start()
{
    if (text_.substr(0, 3) == "\xEF\xBB\xBF")
        return fault("a byte-order mark before the message");
    if (text_.empty())
        return fault("empty message");
    return true;
}

bool JsonScanner::finish()
{
    if (failed())
        return false;
    skip_whitespace();
    if (pos_ != text_.size())
        return fault("invalid JSON: bytes after the message");
    return true;
}

bool JsonScanner::literal(std::string_view word)
{
    if (text_.substr(pos_, word.size()) != word)
        return fault("invalid JSON: bad literal");
    pos_ += word.size();
    return true;
}

bool JsonScanner::boolean(bool& out)
{
    skip_whitespace();
    if (failed() || pos_ >= text_.size())
        return fault("invalid JSON: expected a value");
    out = text_[pos_] == 't';
    return literal(out ? "true" : "false");
}

bool JsonScanner::hex4(std::uint32_t& out)
{
    if (pos_ + 4 > text_.size())
        return fault("invalid JSON: short \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
        char c = text_[pos_++];
        std::uint32_t digit;
        if (c >= '0' && c <= '9')
            digit = static_cast<std::uint32_t>(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<std::uint32_t>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = static_cast<std::uint32_t>(c - 'A' + 10);
        else
            return fault("invalid JSON: bad \\u escape");
        out = out * 16 + digit;
    }
    return true;
}

namespace {

void append_utf8(std::string& out, std::uint32_t cp)
{
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace

bool JsonScanner::escape(std::string& out)
{
    if (pos_ >= text_.size())
        return fault("invalid JSON: unfinished escape");
    char c = text_[pos_++];
    switch (c) {
    case '"': out.push_back('"'); return true;
    case '\\': out.push_back('\\'); return true;
    case '/': out.push_back('/'); return true;
    case 'b': out.push_back('\b'); return true;
    case 'f': out.push_back('\f'); return true;
    case 'n': out.push_back('\n'); return true;
    case 'r': out.push_back('\r'); return true;
    case 't': out.push_back('\t'); return true;
    case 'u': break;
    default: return fault("invalid JSON: bad escape");
    }
    std::uint32_t cp;
    if (!hex4(cp))
        return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fault("invalid JSON: lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        std::uint32_t low;
        if (text_.substr(pos_, 2) != "\\u")
            return fault("invalid JSON: high surrogate without a low one");
        pos_ += 2;
        if (!hex4(low))
            return false;
        if (low < 0xDC00 || low > 0xDFFF)
            return fault("invalid JSON: high surrogate without a low one");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, cp);
    return true;
}

bool JsonScanner::utf8_sequence(std::string& out)
{
    std::size_t length = utf8_sequence_length(text_.substr(pos_));
    if (length == 0)
        return fault("invalid UTF-8 in a string");
    out.append(text_.substr(pos_, length));
    pos_ += length;
    return true;
}

bool JsonScanner::string(std::string& out)
{
    out.clear();
    if (!expect('"'))
        return false;
    for (;;) {
        std::size_t run = pos_;  // plain ASCII is copied in one piece
        while (run < text_.size() && is_plain_json_byte(static_cast<unsigned char>(text_[run])))
            ++run;
        out.append(text_.substr(pos_, run - pos_));
        pos_ = run;
        if (pos_ >= text_.size())
            return fault("invalid JSON: unterminated string");
        auto c = static_cast<unsigned char>(text_[pos_]);
        if (c == '"') {
            ++pos_;
            return true;
        }
        if (c == '\\') {
            ++pos_;
            if (!escape(out))
                return false;
        } else if (c < 0x20) {
            return fault("invalid JSON: control character in a string");
        } else if (!utf8_sequence(out)) {
            return false;
        }
    }
}

bool JsonScanner::string_equals(std::string_view expected, bool& equal)
{
    equal = false;
    const std::size_t before = pos_;
    if (!expect('"'))
        return false;
    std::size_t run = pos_;
    while (run < text_.size() && is_plain_json_byte(static_cast<unsigned char>(text_[run])))
        ++run;
    if (run < text_.size() && text_[run] == '"') {
        equal = text_.substr(pos_, run - pos_) == expected;
        pos_ = run + 1;
        return true;
    }
    // An escape, a multi-byte sequence or a fault: read as string() does.
    pos_ = before;
    std::string decoded;
    if (!string(decoded))
        return false;
    equal = decoded == expected;
    return true;
}

bool JsonScanner::number(std::optional<std::uint64_t>& out)
{
    out.reset();
    skip_whitespace();
    if (failed())
        return false;
    std::size_t begin = pos_;
    auto digit = [&] { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; };
    bool negative = pos_ < text_.size() && text_[pos_] == '-';
    if (negative)
        ++pos_;
    if (!digit())
        return fault("invalid JSON: expected a number");
    if (text_[pos_] == '0')
        ++pos_;
    else
        while (digit())
            ++pos_;
    bool integer = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        integer = false;
        if (!digit())
            return fault("invalid JSON: expected a digit after '.'");
        while (digit())
            ++pos_;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
        integer = false;
        if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-'))
            ++pos_;
        if (!digit())
            return fault("invalid JSON: expected an exponent");
        while (digit())
            ++pos_;
    }
    std::string_view token = text_.substr(begin, pos_ - begin);
    if (integer && !negative) {
        std::uint64_t value = 0;
        bool fits = true;
        for (char c : token) {
            auto d = static_cast<std::uint64_t>(c - '0');
            if (value > (UINT64_MAX - d) / 10) {
                fits = false;
                break;
            }
            value = value * 10 + d;
        }
        if (fits) {
            out = value;
            return true;
        }
    }
    // Any other number is read as a double, as the general reader does, and
    // refused when it overflows one. Written with the locale's decimal point
    // because strtod reads that one.
    std::string copy(token);
    if (auto dot = copy.find('.'); dot != std::string::npos)
        copy[dot] = *std::localeconv()->decimal_point;
    if (!std::isfinite(std::strtod(copy.c_str(), nullptr)))
        return fault("invalid JSON: number overflows a double");
    return true;
}

bool JsonScanner::skip_array()
{
    if (!enter('['))
        return false;
    if (consume(']'))
        return leave();
    do {
        if (!skip_value())
            return false;
    } while (consume(','));
    return expect(']') && leave();
}

bool JsonScanner::skip_value()
{
    std::string scratch;
    std::optional<std::uint64_t> number_value;
    bool flag;
    switch (peek()) {
    case JsonKind::Object: return object([&](const std::string&) { return skip_value(); });
    case JsonKind::Array: return skip_array();
    case JsonKind::String: return string(scratch);
    case JsonKind::Number: return number(number_value);
    case JsonKind::Boolean: return boolean(flag);
    case JsonKind::Null: return literal("null");
    case JsonKind::Invalid: break;
    }
    return fault("invalid JSON: expected a value");
}

}  // namespace bpfbroker::varlink
