#!/usr/bin/env bash
# Prints one line per test the last ctest run skipped, with the reason the
# test gave (GTEST_SKIP() << reason), so a skipped test is never silent:
#
#   scripts/report-skips.sh [BUILD_DIR]      (default build/)
#
# Reads BUILD_DIR/Testing/Temporary/LastTest.log; prints nothing when no
# test was skipped. Always exits 0: skips are reported, not failures.
set -euo pipefail
build=${1:-build}
log="$build/Testing/Temporary/LastTest.log"
[[ -f $log ]] || { echo "report-skips: no $log (run ctest first)" >&2; exit 0; }
awk '
  / Testing: / { sub(/^.* Testing: /, ""); test = $0; next }
  /: Skipped$/ { want = 1; next }
  want         { printf "skipped: %s: %s\n", test, $0; want = 0 }
' "$log" | sort -u
