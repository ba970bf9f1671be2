// Paths baked in by CMake; see build_paths.h.
#include "build_paths.h"

#if !defined(BPFBROKER_TEST_DAEMON) || !defined(BPFBROKER_TEST_CTL) || !defined(BPFBROKER_TEST_BUILD_DIR) || \
    !defined(BPFBROKER_TEST_SOURCE_DIR) || !defined(BPFBROKER_TEST_NSS_STALL)
#error "tests/CMakeLists.txt must define BPFBROKER_TEST_DAEMON, _CTL, _BUILD_DIR, _SOURCE_DIR and _NSS_STALL"
#endif

namespace bpfbroker::test_support {

std::string daemon_binary() { return BPFBROKER_TEST_DAEMON; }
std::string ctl_binary() { return BPFBROKER_TEST_CTL; }
std::string build_dir() { return BPFBROKER_TEST_BUILD_DIR; }
std::string source_dir() { return BPFBROKER_TEST_SOURCE_DIR; }
std::string nss_stall_preload() { return BPFBROKER_TEST_NSS_STALL; }

}  // namespace bpfbroker::test_support
