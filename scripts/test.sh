#!/usr/bin/env bash
# The test command: installs what is missing, builds everything with
# warnings as errors, runs every test under ctest, each fuzzer briefly, then
# the Debian package test (about one more full build).
# Run as root, no sudo needed (the tests load BPF programs and drop to uid 65534).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBPFBROKER_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure --timeout 300 -j2
scripts/run-fuzzers.sh "${FUZZ_SECONDS:-10}"
# The Debian packages: build, lintian, reproducible objects, install, a
# member of group bpfbroker acquires udp_stats and a non-member does not,
# the kit builds the example program package, purge leaves nothing behind.
tests/packaging/deb_test.sh
