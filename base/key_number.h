// " key=123" appended to a line in place: audit records, shared-instance
// keys and acquire reasons are built this way on every acquire, so no
// temporary strings.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace bpfbroker {

inline void append_key_number(std::string& out, std::string_view key, std::uint64_t n)
{
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
    out += ' ';
    out += key;
    out += '=';
    out.append(digits, end);
}

}  // namespace bpfbroker
