// Every shipped program's built manifest agrees with its object: the hash,
// the programs (name and type), every user map the object defines, and the
// internal maps the compiler adds (.rodata, .bss, .data) hold only what the
// manifest declares there: parameters in .rodata, the revocation guard. Needs no privileges: objects are opened, not
// loaded. The signatures are checked by ctest with the openssl CLI.
#include "bpf_object_loader.h"
#include "shipped_program.h"

#include "policy/manifest.h"

#include <bpf/btf.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace bpfbroker::test {
namespace {

using brokerd::testing::read_file;

// "udp_stats:drop_small:...", from the bpfbroker_programs target's list, so
// a newly added program is checked without touching this file.
std::vector<std::string> shipped_programs()
{
    std::vector<std::string> names;
    std::stringstream list(BPFBROKER_PROGRAM_NAMES);
    for (std::string name; std::getline(list, name, ':');) {
        if (!name.empty())
            names.push_back(name);
    }
    return names;
}

std::string sha256_hex(const std::string& bytes)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        return {};
    std::ostringstream hex;
    for (unsigned int i = 0; i < length; ++i)
        hex << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(digest[i]);
    return hex.str();
}

class ShippedProgram : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override
    {
        auto path = built_program_dir(GetParam()) / "manifest.json";
        std::string text = read_file(path);
        ASSERT_FALSE(text.empty()) << "missing or empty " << path;
        manifest_ = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
        ASSERT_TRUE(manifest_.is_object()) << path << " is not a JSON object";
    }

    nlohmann::json manifest_;
};

// The daemon's own parser is the authority on the format: every shipped
// manifest must pass it, name its folder and its object.
TEST_P(ShippedProgram, ManifestIsAcceptedByThePolicyParser)
{
    auto text = read_file(built_program_dir(GetParam()) / "manifest.json");
    auto parsed = bpfbroker::policy::parse_manifest(text);
    ASSERT_TRUE(parsed) << parsed.error().describe();
    EXPECT_EQ(parsed->name, GetParam());
    EXPECT_EQ(parsed->object, GetParam() + ".bpf.o");
}

TEST_P(ShippedProgram, ManifestPinsTheBuiltObject)
{
    std::string object = read_file(built_object_path(GetParam()));
    ASSERT_FALSE(object.empty());
    EXPECT_EQ(manifest_.value("object_sha256", ""), sha256_hex(object));
}

TEST_P(ShippedProgram, ManifestListsEveryProgramWithItsType)
{
    BpfObjectPtr object;
    ASSERT_TRUE(open_built_object(GetParam(), object));

    std::set<std::string> in_object;
    bpf_program* program = nullptr;
    bpf_object__for_each_program(program, object.get())
    {
        in_object.insert(bpf_program__name(program));
    }
    std::set<std::string> in_manifest;
    for (const auto& entry : manifest_.at("programs")) {
        std::string name = entry.at("name");
        in_manifest.insert(name);
        bpf_program* found = bpf_object__find_program_by_name(object.get(), name.c_str());
        ASSERT_NE(found, nullptr) << "manifest program " << name << " is not in the object";
        // libbpf's own names for program types are the manifest's vocabulary,
        // but for io_uring_ops: a struct_ops program of io_uring_bpf_ops.
        std::string type = entry.at("type").get<std::string>();
        EXPECT_EQ(type == "io_uring_ops" ? "struct_ops" : type, libbpf_bpf_prog_type_str(bpf_program__type(found)))
            << "program " << name;
    }
    EXPECT_EQ(in_manifest, in_object);
}

TEST_P(ShippedProgram, ManifestListsEveryMapTheObjectDefines)
{
    BpfObjectPtr object;
    ASSERT_TRUE(open_built_object(GetParam(), object));

    std::set<std::string> in_object;
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object.get())
    {
        // A struct_ops value is the program's registration, never a client map.
        if (!bpf_map__is_internal(map) && bpf_map__type(map) != BPF_MAP_TYPE_STRUCT_OPS)
            in_object.insert(bpf_map__name(map));
    }
    std::set<std::string> in_manifest;
    for (const auto& entry : manifest_.at("maps"))
        in_manifest.insert(entry.at("name").get<std::string>());
    EXPECT_EQ(in_manifest, in_object);
}

// Each internal map is there for something the manifest declares: .bss or
// .data for the guard (one __u32), .rodata for parameters, nothing else.
TEST_P(ShippedProgram, InternalMapsHoldOnlyTheGuardAndParameters)
{
    auto parsed = bpfbroker::policy::parse_manifest(read_file(built_program_dir(GetParam()) / "manifest.json"));
    ASSERT_TRUE(parsed) << parsed.error().describe();
    ASSERT_EQ(parsed->revocation_guard, "bpfbroker_revoked") << "every shipped program declares the guard";
    BpfObjectPtr object;
    ASSERT_TRUE(open_built_object(GetParam(), object));

    const btf* types = bpf_object__btf(object.get());
    ASSERT_NE(types, nullptr);
    std::set<std::string> expected{parsed->revocation_guard};
    for (const auto& p : parsed->parameters)
        expected.insert(p.name);
    std::set<std::string> found;
    for (const char* section : {".bss", ".data", ".rodata"}) {
        const int id = btf__find_by_name_kind(types, section, BTF_KIND_DATASEC);
        if (id <= 0)
            continue;
        const btf_type* datasec = btf__type_by_id(types, static_cast<__u32>(id));
        const btf_var_secinfo* vars = btf_var_secinfos(datasec);
        for (unsigned i = 0; i < btf_vlen(datasec); ++i) {
            std::string name = btf__name_by_offset(types, btf__type_by_id(types, vars[i].type)->name_off);
            if (name == parsed->revocation_guard) {
                EXPECT_NE(std::string(section), ".rodata") << "the guard must be writable";
                EXPECT_EQ(vars[i].size, 4u) << "the guard is a __u32";
            }
            found.insert(name);
        }
    }
    EXPECT_EQ(found, expected);
}

INSTANTIATE_TEST_SUITE_P(Built, ShippedProgram, ::testing::ValuesIn(shipped_programs()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace bpfbroker::test
