// See shipped_program.h.
#include "shipped_program.h"

#include <fstream>

namespace bpfbroker::brokerd::testing {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in)
        return {};
    std::string bytes(static_cast<std::size_t>(in.tellg()), '\0');
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return in ? bytes : std::string();
}

::testing::AssertionResult shipped_entry(const std::string& name, policy::CatalogEntry& entry)
{
    const fs::path dir = fs::path(BPFBROKER_PROGRAMS_DIR) / name;
    entry = policy::CatalogEntry{};
    entry.name = name;
    entry.manifest_bytes = read_file(dir / "manifest.json");
    if (entry.manifest_bytes.empty())
        return ::testing::AssertionFailure() << "cannot read " << (dir / "manifest.json")
                                             << " (build the bpfbroker_programs target)";
    auto manifest = policy::parse_manifest(entry.manifest_bytes);
    if (!manifest)
        return ::testing::AssertionFailure() << "manifest of " << name << ": " << manifest.error().describe();
    entry.object_bytes = read_file(dir / manifest->object);
    if (entry.object_bytes.empty())
        return ::testing::AssertionFailure() << "cannot read the object of " << name;
    entry.manifest = std::move(*manifest);
    entry.state = policy::EntryState::Valid;
    return ::testing::AssertionSuccess();
}

}  // namespace bpfbroker::brokerd::testing
