// libbpf glue for the program tests: log capture, open/load, fd lookup,
// BPF_PROG_TEST_RUN.
#include "bpf_object_loader.h"

#include "brokerd/revocation_guard.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace bpfbroker::test {
namespace {

// libbpf has one process-wide print callback, so captured text is global too;
// the mutex matters only if a test ever loads from several threads.
std::mutex log_mutex;
std::string captured_log;

__attribute__((format(printf, 2, 0))) int capture_libbpf_print(enum libbpf_print_level level,
                                                               const char* format,
                                                               va_list args)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    char line[4096];
    int n = std::vsnprintf(line, sizeof(line), format, args);
    std::lock_guard lock(log_mutex);
    captured_log += line;
    return n;
}

// Routes libbpf's messages into captured_log for one operation and hands
// them back, so the verifier's words end up in the test failure message.
class LibbpfLogCapture {
public:
    LibbpfLogCapture() : previous_(libbpf_set_print(capture_libbpf_print))
    {
        std::lock_guard lock(log_mutex);
        captured_log.clear();
    }
    ~LibbpfLogCapture() { libbpf_set_print(previous_); }
    LibbpfLogCapture(const LibbpfLogCapture&) = delete;
    LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

    std::string text() const
    {
        std::lock_guard lock(log_mutex);
        return captured_log;
    }

private:
    libbpf_print_fn_t previous_;
};

}  // namespace

std::filesystem::path built_program_dir(std::string_view name)
{
    return std::filesystem::path(BPFBROKER_PROGRAMS_DIR) / name;
}

std::filesystem::path built_object_path(std::string_view name)
{
    return built_program_dir(name) / (std::string(name) + ".bpf.o");
}

::testing::AssertionResult open_built_object(std::string_view name, BpfObjectPtr& out)
{
    LibbpfLogCapture log;
    std::string path = built_object_path(name).string();
    BpfObjectPtr object(bpf_object__open_file(path.c_str(), nullptr));
    if (!object) {
        int err = errno;
        return ::testing::AssertionFailure() << "cannot open " << path << ": " << std::strerror(err)
                                             << "\nlibbpf:\n" << log.text();
    }
    out = std::move(object);
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult load_built_object(std::string_view name, BpfObjectPtr& out)
{
    BpfObjectPtr object;
    if (auto opened = open_built_object(name, object); !opened)
        return opened;
    LibbpfLogCapture log;
    if (int err = bpf_object__load(object.get()); err != 0) {
        return ::testing::AssertionFailure() << "cannot load " << built_object_path(name).string()
                                             << ": " << std::strerror(-err) << "\nlibbpf:\n"
                                             << log.text();
    }
    out = std::move(object);
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult find_program_fd(const BpfObjectPtr& object, const char* name, int& fd)
{
    bpf_program* program = bpf_object__find_program_by_name(object.get(), name);
    if (!program)
        return ::testing::AssertionFailure() << "the object has no program " << name;
    fd = bpf_program__fd(program);
    if (fd < 0)
        return ::testing::AssertionFailure() << "program " << name << " is not loaded";
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult find_map_fd(const BpfObjectPtr& object, const char* name, int& fd)
{
    bpf_map* map = bpf_object__find_map_by_name(object.get(), name);
    if (!map)
        return ::testing::AssertionFailure() << "the object has no map " << name;
    fd = bpf_map__fd(map);
    if (fd < 0)
        return ::testing::AssertionFailure() << "map " << name << " is not created";
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult set_revoked(const BpfObjectPtr& object, bool revoked)
{
    auto guard = brokerd::RevocationGuard::locate(object.get(), "bpfbroker_revoked");
    if (!guard)
        return ::testing::AssertionFailure() << guard.error().describe();
    if (auto set = guard->set(revoked); !set)
        return ::testing::AssertionFailure() << set.error().describe();
    auto now = guard->is_set();
    if (!now || *now != revoked)
        return ::testing::AssertionFailure() << "the guard did not take the value";
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult test_run(int program_fd, std::span<const std::uint8_t> frame,
                                    std::uint32_t& retval)
{
    // Filled by hand: LIBBPF_OPTS is a GNU C statement expression.
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = frame.data();
    opts.data_size_in = static_cast<std::uint32_t>(frame.size());
    opts.repeat = 1;
    if (int err = bpf_prog_test_run_opts(program_fd, &opts); err != 0)
        return ::testing::AssertionFailure() << "BPF_PROG_TEST_RUN: " << std::strerror(-err);
    retval = opts.retval;
    return ::testing::AssertionSuccess();
}

void RootTest::SetUp()
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root: loads BPF programs and runs them in the kernel";
}

}  // namespace bpfbroker::test
