# bpfbroker_version: an INTERFACE target whose include directory holds
# bpfbroker_version.h, the project version for every program's --version.
include_guard(GLOBAL)
configure_file("${CMAKE_CURRENT_LIST_DIR}/templates/version.h.in"
               "${CMAKE_BINARY_DIR}/generated/version/bpfbroker_version.h" @ONLY)
add_library(bpfbroker_version INTERFACE)
target_include_directories(bpfbroker_version INTERFACE "${CMAKE_BINARY_DIR}/generated/version")
