// The socket's acquire reply cache; see acquire_reply_cache.h.
#include "brokerd/acquire_reply_cache.h"

#include <algorithm>

namespace bpfbroker::brokerd {

HandoutShape HandoutShape::of(const Handout& h)
{
    HandoutShape s;
    s.info = h;  // the info part of the hand-out
    s.program = h.program.valid();
    for (const auto& l : h.links)
        s.links.push_back(l.program);
    for (const auto& m : h.maps)
        s.maps.emplace_back(m.name, m.access);
    return s;
}

bool HandoutShape::describes(const Handout& h) const
{
    // The id first: a different program misses at once.
    return info.prog_id == h.prog_id && program == h.program.valid() && info == static_cast<const HandoutInfo&>(h) &&
           std::equal(links.begin(), links.end(), h.links.begin(), h.links.end(),
                      [](const std::string& a, const HandedLink& b) { return a == b.program; }) &&
           std::equal(maps.begin(), maps.end(), h.maps.begin(), h.maps.end(),
                      [](const auto& a, const HandedMap& b) { return a.first == b.name && a.second == b.access; });
}

const std::string* AcquireReplyCache::find(const Handout& h) const
{
    const auto& slot = slots_[h.prog_id % kSlots];
    return slot && slot->shape.describes(h) ? &slot->bytes : nullptr;
}

void AcquireReplyCache::remember(HandoutShape shape, std::string bytes)
{
    const std::size_t at = shape.info.prog_id % kSlots;
    slots_[at] = Entry{std::move(shape), std::move(bytes)};
}

}  // namespace bpfbroker::brokerd
