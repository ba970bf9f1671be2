// A hand-written JSON writer for the messages and records written on every
// request: the AcquireProgram call and reply (acquire_codec.h) and the
// daemon's state journal lines. It writes what nlohmann-json's dump() writes
// for the same value, byte for byte, when keys are given in sorted order
// (nlohmann keeps an object's keys in a std::map): tests of each user hold
// it to that. Strings are escaped as dump() escapes them; one that is not
// UTF-8 makes ok() false (dump() would throw).
#pragma once

#include <bpfbroker/result.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace bpfbroker::varlink {

class JsonWriter {
public:
    JsonWriter() = default;
    // Room for `expected_bytes` up front: a hot message grows no buffer.
    explicit JsonWriter(std::size_t expected_bytes) { out_.reserve(expected_bytes); }
    JsonWriter& raw(std::string_view text)
    {
        out_.append(text);
        return *this;
    }
    // A member's key, after a comma unless it is the first in its object.
    JsonWriter& key(std::string_view k)
    {
        separate();
        string(k);
        out_.push_back(':');
        return *this;
    }
    // A key this program spells (a literal of plain ASCII letters and '_'),
    // written without the escaping scan `key` runs over keys from data.
    template <std::size_t N>
    JsonWriter& literal_key(const char (&k)[N])
    {
        separate();
        out_.push_back('"');
        out_.append(k, N - 1);
        out_.append("\":", 2);
        return *this;
    }
    JsonWriter& string(std::string_view s);
    JsonWriter& number(std::uint64_t n);
    JsonWriter& signed_number(std::int64_t n);
    JsonWriter& boolean(bool b)
    {
        out_.append(b ? "true" : "false");
        return *this;
    }
    JsonWriter& open()
    {
        out_.push_back('{');
        first_ = true;
        return *this;
    }
    JsonWriter& close()
    {
        out_.push_back('}');
        first_ = false;
        return *this;
    }
    template <typename Map, typename Value>
    JsonWriter& object(const Map& map, Value&& value)
    {
        open();
        for (const auto& [k, v] : map) {
            key(k);
            value(v);
        }
        return close();
    }
    JsonWriter& u64_object(const std::map<std::string, std::uint64_t>& map)
    {
        return object(map, [this](std::uint64_t v) { number(v); });
    }
    template <typename Range, typename Value>
    JsonWriter& array(const Range& items, Value&& value)
    {
        out_.push_back('[');
        bool first = true;
        for (const auto& item : items) {
            if (!first)
                out_.push_back(',');
            first = false;
            value(item);
        }
        out_.push_back(']');
        first_ = false;
        return *this;
    }

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    // The text so far; the writer is spent.
    [[nodiscard]] std::string take() && { return std::move(out_); }
    // A Varlink frame: the text and its NUL, or InvalidParameter (a string
    // that is not UTF-8) or LimitExceeded (longer than max_size).
    Result<std::string> finish_frame(std::size_t max_size) &&;

private:
    void separate()
    {
        if (!first_)
            out_.push_back(',');
        first_ = false;
    }
    std::string out_;
    bool first_ = true;
    bool ok_ = true;
};

}  // namespace bpfbroker::varlink
