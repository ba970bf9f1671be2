// Lower-case hexadecimal, the one spelling of hashes, key ids and program
// tags in this project (files, audit records, replies).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bpfbroker {

// "0a1b..." for `size` bytes at `data`.
std::string hex_encode(const unsigned char* data, std::size_t size);

// True for 64 lower-case hex digits (a SHA-256 as we print it).
bool is_sha256_hex(std::string_view s) noexcept;

}  // namespace bpfbroker
