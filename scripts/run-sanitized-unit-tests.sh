#!/usr/bin/env bash
# Builds the unit tests (base, policy, wire, client, brokerd) with
# AddressSanitizer and UndefinedBehaviorSanitizer in build-asan/ and runs
# them. The end-to-end tests are left to the regular build: this is for
# memory errors in the code they share, which a passing test can hide (a
# read of a freed map node that happens to hold the old value).
#
#   scripts/run-sanitized-unit-tests.sh
#
# Configures build-asan/ in the repository root (once; later runs reuse
# it) and exits non-zero when a test fails or a sanitizer reports.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-asan"
suites=(base/base_tests policy/policy_tests wire/wire_tests client/client_tests brokerd/brokerd_tests)

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DBPFBROKER_ASAN=ON -DBPFBROKER_UBSAN=ON \
    -DBPFBROKER_BENCH=OFF >/dev/null
targets=()
for suite in "${suites[@]}"; do
    targets+=("$(basename "$suite")")
done
# The core's tests lay out a signed demo root from the built programs and key.
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" bpfbroker_programs bpfbroker_dev_key >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for suite in "${suites[@]}"; do
    log="$build/$(basename "$suite").log"
    if "$build/$suite" >"$log" 2>&1; then
        echo "sanitized $(basename "$suite"): $(grep -E '^\[  PASSED  \]' "$log" | tail -1)"
    else
        echo "sanitized $(basename "$suite"): FAILED, see $log" >&2
        grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error|\[  FAILED  \]' "$log" | head -20 >&2 || true
        failed=1
    fi
done
exit "$failed"
