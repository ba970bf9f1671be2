// Where the binaries and trees the end-to-end suites use are: baked in by
// CMake (tests/CMakeLists.txt) when bpfbroker_test_support is built.
#pragma once

#include <string>

namespace bpfbroker::test_support {

std::string daemon_binary();  // bpfbrokerd
std::string ctl_binary();     // bpfbrokerctl
std::string build_dir();      // the CMake binary dir (programs/, dev-keys/)
std::string source_dir();     // the project's source tree (scripts/, systemd/)
std::string nss_stall_preload();  // support/nss_stall_preload.c, built as an LD_PRELOAD module

}  // namespace bpfbroker::test_support
