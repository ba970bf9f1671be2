// The socket's last acquire replies, by program id, reused when a hand-out
// says exactly what one of them said. A warm acquire of a shared instance
// hands every caller the same program, so after the core has decided (and
// audited) the call, writing its reply again is the same bytes every time;
// comparing the hand-out with what the stored reply said is cheaper than
// encoding it. Only the bytes are kept: the fds are the hand-out's own.
//
// One cache per socket loop thread; bounded (kSlots replies, each at most
// the reply size limit).
#pragma once

#include "brokerd/handout.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bpfbroker::brokerd {

// Everything an AcquireProgram reply says of a hand-out (to_wire()): its
// info, and which fds it carries under which names, in reply order.
struct HandoutShape {
    HandoutInfo info;
    bool program = false;
    std::vector<std::string> links;
    std::vector<std::pair<std::string, policy::ClientAccess>> maps;

    static HandoutShape of(const Handout& h);
    // Whether `h`'s reply would say exactly this.
    [[nodiscard]] bool describes(const Handout& h) const;
};

class AcquireReplyCache {
public:
    static constexpr std::size_t kSlots = 16;

    // The stored reply that says what `h`'s would, or null.
    [[nodiscard]] const std::string* find(const Handout& h) const;
    // Keeps `bytes` as the reply for hand-outs of `shape`, in the slot of
    // its program id (replacing what was there).
    void remember(HandoutShape shape, std::string bytes);

private:
    struct Entry {
        HandoutShape shape;
        std::string bytes;
    };
    std::array<std::optional<Entry>, kSlots> slots_;
};

}  // namespace bpfbroker::brokerd
