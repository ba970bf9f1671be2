// Address prefixes; see prefix.h.
#include "prefix.h"

#include <arpa/inet.h>

#include <charconv>

namespace bpfbroker::example {

std::optional<Prefix> parse_prefix(std::string_view text, std::string& error)
{
    const auto slash = text.find('/');
    const std::string address(text.substr(0, slash));

    Prefix p;
    if (::inet_pton(AF_INET, address.c_str(), p.addr.data()) == 1) {
        p.family = AF_INET;
    } else if (::inet_pton(AF_INET6, address.c_str(), p.addr.data()) == 1) {
        p.family = AF_INET6;
    } else {
        error = "\"" + std::string(text) + "\": \"" + address + "\" is not an IPv4 or IPv6 address";
        return std::nullopt;
    }

    const unsigned max_length = static_cast<unsigned>(p.address_bytes() * 8);
    p.length = max_length;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        unsigned length = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || length > max_length) {
            error = "\"" + std::string(text) + "\": the prefix length must be a number from 0 to " +
                    std::to_string(max_length);
            return std::nullopt;
        }
        p.length = length;
    }

    // Clear the host bits.
    for (unsigned bit = p.length; bit < max_length; ++bit)
        p.addr[bit / 8] = static_cast<std::uint8_t>(p.addr[bit / 8] & ~(0x80u >> (bit % 8)));
    return p;
}

std::string format_prefix(const Prefix& prefix)
{
    char text[INET6_ADDRSTRLEN] = {};
    if (::inet_ntop(prefix.family, prefix.addr.data(), text, sizeof text) == nullptr)
        return "?";
    return std::string(text) + "/" + std::to_string(prefix.length);
}

}  // namespace bpfbroker::example
