// See handmade_object.h.
#include "handmade_object.h"

#include "shipped_program.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace bpfbroker::brokerd::testing {

namespace fs = std::filesystem;

namespace {

#if defined(__x86_64__)
constexpr const char* kMultiarchInclude = "/usr/include/x86_64-linux-gnu";
#elif defined(__aarch64__)
constexpr const char* kMultiarchInclude = "/usr/include/aarch64-linux-gnu";
#else
constexpr const char* kMultiarchInclude = "/usr/include";
#endif

}  // namespace

TempDir::TempDir()
{
    std::string pattern = (fs::temp_directory_path() / "bpfbroker-loader-test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr)
        path_ = pattern;
}

TempDir::~TempDir()
{
    std::error_code ignored;
    if (!path_.empty())
        fs::remove_all(path_, ignored);
}

bool have_clang()
{
    return std::system("command -v clang >/dev/null 2>&1") == 0;
}

::testing::AssertionResult compile_bpf(const char* source, std::string& object_bytes)
{
    TempDir dir;
    if (dir.path().empty())
        return ::testing::AssertionFailure() << "mkdtemp failed";
    const fs::path c_file = dir.path() / "test.bpf.c";
    const fs::path o_file = dir.path() / "test.bpf.o";
    const fs::path log_file = dir.path() / "clang.log";
    std::ofstream(c_file) << source;
    std::ostringstream command;
    command << "clang -target bpf -O2 -g -I" << kMultiarchInclude << " -c " << c_file << " -o " << o_file << " >"
            << log_file << " 2>&1";
    if (std::system(command.str().c_str()) != 0)
        return ::testing::AssertionFailure() << "clang failed: " << command.str() << "\n" << read_file(log_file);
    object_bytes = read_file(o_file);
    if (object_bytes.empty())
        return ::testing::AssertionFailure() << "clang wrote no object";
    return ::testing::AssertionSuccess();
}

policy::CatalogEntry handmade_entry(std::string name, std::string object_bytes, policy::ProgramSpec program,
                            std::vector<policy::MapSpec> maps)
{
    policy::CatalogEntry entry;
    entry.name = name;
    entry.state = policy::EntryState::Valid;
    entry.object_bytes = std::move(object_bytes);
    policy::Manifest manifest;
    manifest.name = std::move(name);
    manifest.version = "0.0.1";
    manifest.object = "test.bpf.o";
    manifest.programs.push_back(std::move(program));
    manifest.maps = std::move(maps);
    manifest.instance = policy::InstanceMode::PerClient;
    entry.manifest = std::move(manifest);
    return entry;
}

}  // namespace bpfbroker::brokerd::testing
