// Test helpers for BPF objects compiled by the tests themselves (a verifier
// rejection, parameters, broker-attached programs) and catalog entries with
// a manifest written in C++, for what the shipped programs cannot show.
#pragma once

#include "policy/catalog.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace bpfbroker::brokerd::testing {

// A private directory under the temp dir, removed with everything in it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

bool have_clang();

// Compiles `source` with clang -target bpf and returns the object's bytes;
// the files are gone when this returns, so only the bytes can be loaded.
::testing::AssertionResult compile_bpf(const char* source, std::string& object_bytes);

// A Valid entry for `object_bytes` with a per-client manifest of one program.
policy::CatalogEntry handmade_entry(std::string name, std::string object_bytes, policy::ProgramSpec program,
                                    std::vector<policy::MapSpec> maps);

}  // namespace bpfbroker::brokerd::testing
