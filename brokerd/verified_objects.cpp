// Verified objects kept for the next load; see verified_objects.h.
#include "brokerd/verified_objects.h"

namespace bpfbroker::brokerd {

Result<std::shared_ptr<const std::string>> VerifiedObjects::object_of(const policy::CatalogEntry& entry)
{
    // Entries made by hand hold their object already (and no pin to key it by).
    const bool from_catalog = entry.object_bytes.empty() && entry.manifest;
    if (from_catalog) {
        std::lock_guard lock(mutex_);
        if (auto it = kept_.find(entry.manifest->object_sha256); it != kept_.end()) {
            by_use_.splice(by_use_.begin(), by_use_, it->second.use);
            return it->second.bytes;
        }
    }
    // Read without the lock: another thread's load need not wait for the disk.
    auto read = entry.read_object();
    if (!read)
        return fail(std::move(read).error());
    auto bytes = std::make_shared<const std::string>(std::move(*read));
    if (from_catalog)
        keep(entry.manifest->object_sha256, bytes);
    return bytes;
}

void VerifiedObjects::keep(const std::string& sha256, std::shared_ptr<const std::string> bytes)
{
    if (bytes->size() > max_bytes_)
        return;
    std::lock_guard lock(mutex_);
    if (kept_.contains(sha256))
        return;  // another thread kept it meanwhile
    while (bytes_ + bytes->size() > max_bytes_ && !by_use_.empty()) {
        auto oldest = kept_.find(by_use_.back());
        bytes_ -= oldest->second.bytes->size();
        kept_.erase(oldest);
        by_use_.pop_back();
    }
    by_use_.push_front(sha256);
    bytes_ += bytes->size();
    kept_.emplace(sha256, Kept{std::move(bytes), by_use_.begin()});
}

std::size_t VerifiedObjects::bytes() const
{
    std::lock_guard lock(mutex_);
    return bytes_;
}

std::size_t VerifiedObjects::objects() const
{
    std::lock_guard lock(mutex_);
    return kept_.size();
}

}  // namespace bpfbroker::brokerd
