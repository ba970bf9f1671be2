#!/usr/bin/env bash
# The test command: installs what is missing, builds everything with
# warnings as errors, runs every test under ctest, the unit tests again
# under sanitizers, each fuzzer briefly, then the Debian package test
# (about one more full build). BPFBROKER_TEST_KERNEL:
# see below.
# Run as root, no sudo needed (the tests load BPF programs and drop to uid 65534).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBPFBROKER_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure --timeout 300 -j2
# A test this kernel cannot run says so: one line each, with its reason.
scripts/report-skips.sh build
# With BPFBROKER_TEST_KERNEL=BZIMAGE (Linux 7.1+ with io_uring_bpf_ops), the
# io_uring_ops end-to-end tests, which this kernel skips, run again in a VM
# booted from that image, with a daemon started inside it.
if [[ -n "${BPFBROKER_TEST_KERNEL:-}" ]]; then
  scripts/vm-test.sh --kernel "$BPFBROKER_TEST_KERNEL" -- sh -c \
    "build/brokerd/brokerd_tests --gtest_filter='RingAttach*' && build/tests/broker_e2e_tests --gtest_filter='Ring*'"
fi
# The unit tests again under AddressSanitizer and UBSan (build-asan/).
scripts/run-sanitized-unit-tests.sh
scripts/run-fuzzers.sh "${FUZZ_SECONDS:-10}"
# The Debian packages: build, lintian, reproducible objects, install, a
# member of group bpfbroker acquires udp_stats and a non-member does not,
# the kit builds the example program package, purge leaves nothing behind.
tests/packaging/deb_test.sh
