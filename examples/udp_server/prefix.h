// Address prefixes for src_allow's LPM tries: "10.0.0.0/8", "::1/128", or a
// bare address meaning the whole address (/32 or /128).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bpfbroker::example {

struct Prefix {
    int family = 0;                         // AF_INET or AF_INET6
    std::array<std::uint8_t, 16> addr{};    // network byte order; first 4 bytes for AF_INET
    unsigned length = 0;                    // prefix length in bits

    [[nodiscard]] std::size_t address_bytes() const noexcept { return family == AF_INET ? 4 : 16; }
};

// Parses "ADDRESS[/LENGTH]". Bits past LENGTH are cleared, so "10.1.2.3/8"
// becomes 10.0.0.0/8 (the trie would ignore them anyway; clearing them makes
// what is printed match what is matched). nullopt with `error` set when the
// text is not a prefix.
std::optional<Prefix> parse_prefix(std::string_view text, std::string& error);

// "10.0.0.0/8", "::1/128".
std::string format_prefix(const Prefix& prefix);

}  // namespace bpfbroker::example
