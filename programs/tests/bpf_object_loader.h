// Opens and loads the BPF objects this build produced (BPFBROKER_PROGRAMS_DIR),
// for tests that run them in the kernel. libbpf's messages, the verifier log
// among them, are captured so a failed load explains itself in the failure.
#pragma once

#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace bpfbroker::test {

struct BpfObjectDeleter {
    void operator()(bpf_object* object) const noexcept { bpf_object__close(object); }
};
// Closing the object closes every program and map fd libbpf made for it.
using BpfObjectPtr = std::unique_ptr<bpf_object, BpfObjectDeleter>;

// ${BPFBROKER_PROGRAMS_DIR}/NAME, the build-tree mirror of programs.d/NAME.
std::filesystem::path built_program_dir(std::string_view name);
std::filesystem::path built_object_path(std::string_view name);

// Opens NAME.bpf.o without loading it (no privileges needed).
::testing::AssertionResult open_built_object(std::string_view name, BpfObjectPtr& out);
// Opens and loads NAME.bpf.o into the kernel (needs root).
::testing::AssertionResult load_built_object(std::string_view name, BpfObjectPtr& out);

// The fd of a program or map of a loaded object, owned by the object; a
// failure names what is missing.
::testing::AssertionResult find_program_fd(const BpfObjectPtr& object, const char* name, int& fd);
::testing::AssertionResult find_map_fd(const BpfObjectPtr& object, const char* name, int& fd);

// Sets (or clears) the object's revocation guard, bpfbroker_revoked, the
// way the daemon does (brokerd/revocation_guard.h).
::testing::AssertionResult set_revoked(const BpfObjectPtr& object, bool revoked);

// Runs a socket filter once with BPF_PROG_TEST_RUN on an Ethernet frame and
// stores its return value (0 = drop, >= skb->len = keep whole datagram).
::testing::AssertionResult test_run(int program_fd, std::span<const std::uint8_t> frame,
                                    std::uint32_t& retval);

// Skips the calling test unless it runs as root, which loading BPF,
// BPF_PROG_TEST_RUN and SO_ATTACH_BPF of a fresh program all need.
class RootTest : public ::testing::Test {
protected:
    void SetUp() override;
};

}  // namespace bpfbroker::test
