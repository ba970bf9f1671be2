// The object files of catalog entries, kept in memory after a per-client
// load read and checked them, so that the next load of the same object
// reads no file and hashes nothing (about 5% of a cold acquire: the trusted
// directory walk, the read and the SHA-256).
//
// Kept by the object's SHA-256 as the signed manifest pins it, and only
// bytes read from the catalog (read_pinned_object checked that they hash to
// it): the bytes under a key are the bytes that hashed to it, whichever
// entry, or reload of one, asks next. An object changed on disk since is
// not read again; the verified bytes are what is loaded, as the catalog
// promised. Bounded by bytes, least recently used out first; the catalog's
// idle memory is unchanged (nothing is kept before a load).
#pragma once

#include "policy/catalog.h"

#include <bpfbroker/result.h>

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace bpfbroker::brokerd {

class VerifiedObjects {
public:
    explicit VerifiedObjects(std::size_t max_bytes) : max_bytes_(max_bytes) {}

    // The verified object of `entry`: kept bytes, or read and checked now
    // (CatalogEntry::read_object) and kept when they fit the bound.
    Result<std::shared_ptr<const std::string>> object_of(const policy::CatalogEntry& entry);

    [[nodiscard]] std::size_t bytes() const;
    [[nodiscard]] std::size_t objects() const;

private:
    struct Kept {
        std::shared_ptr<const std::string> bytes;
        std::list<std::string>::iterator use;
    };
    void keep(const std::string& sha256, std::shared_ptr<const std::string> bytes);

    const std::size_t max_bytes_;
    mutable std::mutex mutex_;
    std::list<std::string> by_use_;  // most recently used first
    std::unordered_map<std::string, Kept> kept_;
    std::size_t bytes_ = 0;
};

}  // namespace bpfbroker::brokerd
