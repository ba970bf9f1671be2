# Project-wide compile flags: warnings, sanitizers, libstdc++ assertions.
# Applied through an interface target so nothing leaks into BPF C builds.
add_library(bpfbroker_flags INTERFACE)
target_compile_options(bpfbroker_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wnull-dereference
  -Wformat=2 -Wimplicit-fallthrough)
target_compile_definitions(bpfbroker_flags INTERFACE _GLIBCXX_ASSERTIONS _FILE_OFFSET_BITS=64)
if(BPFBROKER_WERROR)
  target_compile_options(bpfbroker_flags INTERFACE -Werror)
endif()
if(BPFBROKER_ASAN)
  target_compile_options(bpfbroker_flags INTERFACE -fsanitize=address -fno-omit-frame-pointer)
  target_link_options(bpfbroker_flags INTERFACE -fsanitize=address)
endif()
if(BPFBROKER_UBSAN)
  target_compile_options(bpfbroker_flags INTERFACE -fsanitize=undefined -fno-sanitize-recover=undefined)
  target_link_options(bpfbroker_flags INTERFACE -fsanitize=undefined)
endif()
