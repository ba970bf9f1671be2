// JsonWriter's escaping and numbers; see json_writer.h.
#include "wire/json_writer.h"

#include "wire/json_scanner.h"

#include <charconv>
#include <cstdio>

namespace bpfbroker::varlink {

JsonWriter& JsonWriter::string(std::string_view s)
{
    out_.push_back('"');
    for (std::size_t i = 0; i < s.size();) {
        // Names, tags and hashes are all plain bytes: copied in one piece.
        std::size_t plain = i;
        while (plain < s.size() && is_plain_json_byte(static_cast<unsigned char>(s[plain])))
            ++plain;
        if (plain > i) {
            out_.append(s.data() + i, plain - i);
            i = plain;
            continue;
        }
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {  // copied as it is, once it is known to be UTF-8
            std::size_t len = utf8_sequence_length(s.substr(i));
            if (len == 0) {
                ok_ = false;
                ++i;
                continue;
            }
            out_.append(s.substr(i, len));
            i += len;
            continue;
        }
        switch (c) {
        case '"': out_.append("\\\""); break;
        case '\\': out_.append("\\\\"); break;
        case '\b': out_.append("\\b"); break;
        case '\f': out_.append("\\f"); break;
        case '\n': out_.append("\\n"); break;
        case '\r': out_.append("\\r"); break;
        case '\t': out_.append("\\t"); break;
        default: {  // the other control bytes; plain ones were copied above
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out_.append(buf);
        }
        }
        ++i;
    }
    out_.push_back('"');
    return *this;
}

JsonWriter& JsonWriter::number(std::uint64_t n)
{
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out_.append(buf, static_cast<std::size_t>(end - buf));
    return *this;
}

JsonWriter& JsonWriter::signed_number(std::int64_t n)
{
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out_.append(buf, static_cast<std::size_t>(end - buf));
    return *this;
}

Result<std::string> JsonWriter::finish_frame(std::size_t max_size) &&
{
    if (!ok_)
        return fail(ErrorCode::InvalidParameter, "a string in the message is not UTF-8");
    if (out_.size() > max_size)
        return fail(ErrorCode::LimitExceeded, "message of " + std::to_string(out_.size()) +
                                                  " bytes exceeds the limit of " + std::to_string(max_size));
    out_.push_back('\0');
    return std::move(out_);
}

}  // namespace bpfbroker::varlink
