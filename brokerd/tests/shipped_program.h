// Test helpers shared by the daemon's unit tests: a catalog entry for a
// program the build produced, read by hand (verifying its signature is the
// catalog's business, not the loader's or the tracker's).
#pragma once

#include "policy/catalog.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace bpfbroker::brokerd::testing {

// The whole file, or "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// Fills `entry` (state Valid) from BPFBROKER_PROGRAMS_DIR/NAME.
::testing::AssertionResult shipped_entry(const std::string& name, policy::CatalogEntry& entry);

}  // namespace bpfbroker::brokerd::testing
