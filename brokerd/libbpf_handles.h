// Owning handles for libbpf objects, and the capture of libbpf's messages.
//
// libbpf prints through one process-wide callback (libbpf_set_print), to
// stderr by default. The daemon's library code must not log, so the first
// LibbpfMessages installs a callback that drops every message, except on a
// thread that is inside a LibbpfMessages scope: there the warnings are kept
// so that a failed load can carry them in its Error::detail. The capture is
// per thread, so two transports loading at once do not mix their messages.
// The callback stays installed for the life of the process; anything else
// calling libbpf_set_print later replaces it (and the capture stops).
#pragma once

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

namespace bpfbroker::brokerd {

struct BpfObjectDeleter {
    void operator()(bpf_object* object) const noexcept { bpf_object__close(object); }
};
// Closing the object closes every program and map fd libbpf made for it;
// the loader keeps its own duplicates.
using BpfObjectPtr = std::unique_ptr<bpf_object, BpfObjectDeleter>;

struct BtfDeleter {
    void operator()(btf* b) const noexcept { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

// Collects libbpf's warnings emitted on this thread while it is alive.
// Scopes nest: an inner one collects, then hands back to the outer.
class LibbpfMessages {
public:
    // Captured text is bounded: a runaway message stream keeps its tail.
    static constexpr std::size_t kMaxCapturedBytes = 16 * 1024;

    LibbpfMessages() : previous_(sink())
    {
        static std::once_flag installed;
        std::call_once(installed, [] { libbpf_set_print(&LibbpfMessages::print); });
        sink() = &text_;
    }
    ~LibbpfMessages() { sink() = previous_; }
    LibbpfMessages(const LibbpfMessages&) = delete;
    LibbpfMessages& operator=(const LibbpfMessages&) = delete;

    [[nodiscard]] const std::string& text() const noexcept { return text_; }

private:
    static std::string*& sink() noexcept
    {
        thread_local std::string* current = nullptr;
        return current;
    }

    __attribute__((format(printf, 2, 0))) static int print(enum libbpf_print_level level, const char* format,
                                                           va_list args)
    {
        std::string* out = sink();
        if (out == nullptr || level == LIBBPF_DEBUG)
            return 0;
        char line[1024];
        const int n = std::vsnprintf(line, sizeof(line), format, args);
        if (n <= 0)
            return n;
        out->append(line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof(line) - 1));
        if (out->size() > kMaxCapturedBytes)
            out->erase(0, out->size() - kMaxCapturedBytes);
        return n;
    }

    std::string text_;
    std::string* previous_;
};

}  // namespace bpfbroker::brokerd
