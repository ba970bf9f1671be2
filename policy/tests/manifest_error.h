// For the manifest tests: parses a manifest document and returns the
// refusal's message ("" when it parses), expecting every refusal to be
// ManifestInvalid.
#pragma once

#include "policy/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

namespace bpfbroker::policy::testing {

inline std::string error_of(const nlohmann::json& doc)
{
    auto m = parse_manifest(doc.dump());
    if (m)
        return "";
    EXPECT_EQ(m.error().code, ErrorCode::ManifestInvalid);
    return m.error().message;
}

}  // namespace bpfbroker::policy::testing
