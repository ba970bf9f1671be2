// An fd a reply carries to a caller. Most are the reply's own (a per-client
// instance's program, a link, a map opened for the caller) and close with
// it. A shared instance's program fd is one open file the daemon hands to
// every holder: the reply holds a reference to it, which keeps it open
// until the fd is sent even if the instance is dropped meanwhile, so the
// daemon makes no duplicate per call. Either way the caller receives a
// descriptor of its own: SCM_RIGHTS installs one, D-Bus duplicates.
#pragma once

#include <bpfbroker/unique_fd.h>

#include <memory>
#include <utility>

namespace bpfbroker::brokerd {

class HandedFd {
public:
    HandedFd() = default;
    // Implicit: a reply's own fd is handed as it is.
    HandedFd(UniqueFd owned) noexcept : owned_(std::move(owned)) {}  // NOLINT(google-explicit-constructor)
    explicit HandedFd(std::shared_ptr<const UniqueFd> shared) noexcept : shared_(std::move(shared)) {}

    [[nodiscard]] int get() const noexcept { return shared_ ? shared_->get() : owned_.get(); }
    [[nodiscard]] bool valid() const noexcept { return get() >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // The fd as one the holder owns: the reply's own, or a CLOEXEC
    // duplicate of the shared one (invalid, errno set, when that fails).
    [[nodiscard]] UniqueFd take() noexcept
    {
        if (!shared_)
            return std::move(owned_);
        return UniqueFd::dup_cloexec(std::exchange(shared_, nullptr)->get());
    }

private:
    UniqueFd owned_;
    std::shared_ptr<const UniqueFd> shared_;
};

}  // namespace bpfbroker::brokerd
