// The benches' command lines: `--help` answers, a count that is not a
// positive number is a usage error (exit 2), and a fatal error names the
// bench (exit 1) and first removes the scratch it made (UndoOnDie). Each
// bench calls bench_cli::start() first.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bpfbroker::bench_cli {

inline std::string& bench_name()
{
    static std::string name = "bench";
    return name;
}

struct Undo {
    pid_t owner;
    std::function<void()> run;
};

inline std::vector<Undo>& undos()
{
    static std::vector<Undo> list;
    return list;
}

// exit() skips destructors, so a scratch root would outlive a failed bench:
// what it holds, die() runs first, newest first, and only in the process
// that registered it (a forked child that dies must not remove its parent's
// root). Scoped: leaving the scope (the normal way out) unregisters it.
class UndoOnDie {
public:
    explicit UndoOnDie(std::function<void()> run) { undos().push_back({::getpid(), std::move(run)}); }
    ~UndoOnDie() { undos().pop_back(); }
    UndoOnDie(const UndoOnDie&) = delete;
    UndoOnDie& operator=(const UndoOnDie&) = delete;
};

[[noreturn]] inline void die(const std::string& what)
{
    std::fprintf(stderr, "%s: %s\n", bench_name().c_str(), what.c_str());
    auto pending = std::exchange(undos(), {});
    for (auto it = pending.rbegin(); it != pending.rend(); ++it)
        if (it->owner == ::getpid())
            it->run();
    std::exit(1);
}

// Names the bench for die(); prints `usage` and exits 0 for --help or -h.
inline void start(std::string_view name, int argc, char** argv, std::string_view usage)
{
    bench_name() = std::string(name);
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
            std::fwrite(usage.data(), 1, usage.size(), stdout);
            std::exit(0);
        }
}

// What is wrong with the command line, then the usage, on stderr; exit 2.
[[noreturn]] inline void usage_error(const std::string& what, std::string_view usage)
{
    std::fprintf(stderr, "%s: %s\n%.*s", bench_name().c_str(), what.c_str(), static_cast<int>(usage.size()),
                 usage.data());
    std::exit(2);
}

// `arg` as a count in [1, 10'000'000], else a usage error.
inline int positive_count(const char* arg, std::string_view usage)
{
    char* end = nullptr;
    const long v = std::strtol(arg, &end, 10);
    if (end == arg || *end != '\0' || v < 1 || v > 10'000'000)
        usage_error("not a positive count: '" + std::string(arg) + "'", usage);
    return static_cast<int>(v);
}

}  // namespace bpfbroker::bench_cli
