#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in fuzz/ for a short while each.
#
#   scripts/run-fuzzers.sh [SECONDS]      (default 10 seconds per fuzzer)
#
# Configures build-fuzz/ in the repository root with clang (once; later runs
# reuse it), builds every fuzzer of fuzz/CMakeLists.txt, and runs each on a
# temporary copy of its seed corpus (fuzz/corpus/NAME/) so the checkout stays
# clean. Prints one summary line per fuzzer and exits non-zero when a fuzzer
# finds a crash, a leak, a timeout or an out-of-memory input; the input that
# triggered it is kept in build-fuzz/fuzz-artifacts/ and its path printed.
#
# Environment: BPFBROKER_FUZZ_CC / BPFBROKER_FUZZ_CXX pick the compilers
# (default: clang / clang++, else clang-14 / clang++-14). Extra libFuzzer flags
# can be given in BPFBROKER_FUZZ_FLAGS (e.g. "-seed=1 -max_len=65536").
set -euo pipefail

duration=${1:-10}
if ! [[ $duration =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]   (a positive number of seconds per fuzzer)" >&2
    exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-fuzz"
artifacts="$build/fuzz-artifacts"
fuzzers=(manifest_fuzzer grant_fuzzer varlink_dispatch_fuzzer varlink_frame_fuzzer acquire_codec_fuzzer)
declare -A corpus_of=([manifest_fuzzer]=manifest [grant_fuzzer]=grants [varlink_dispatch_fuzzer]=varlink_calls
                      [varlink_frame_fuzzer]=varlink_frames [acquire_codec_fuzzer]=acquire_codec)

die() { echo "run-fuzzers: $*" >&2; exit 2; }

pick() {  # first command of the arguments that exists
    local c
    for c in "$@"; do
        [[ -n $c ]] && command -v "$c" >/dev/null 2>&1 && { command -v "$c"; return 0; }
    done
    return 1
}

if ! grep -Eq '^[^#]*add_subdirectory\(\s*fuzz\s*\)' "$root/CMakeLists.txt"; then
    die "the top-level CMakeLists.txt does not add fuzz/; it needs:
    if(BPFBROKER_FUZZ)
      add_subdirectory(fuzz)
    endif()"
fi

# --- configure (first run only, or when the cache is not a clang fuzz build) ---
mkdir -p "$build"
config_log="$build/run-fuzzers-configure.log"
cache="$build/CMakeCache.txt"
if [[ -f $cache ]]; then
    cached_cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$cache")
    if [[ -n $cached_cxx && $(basename "$cached_cxx") != clang++* ]]; then
        die "$build was configured with $cached_cxx, not clang++; remove $build and run again"
    fi
    # Re-running cmake on an existing cache with the same options is a no-op
    # apart from picking up CMakeLists.txt changes.
    if ! cmake -S "$root" -B "$build" -DBPFBROKER_FUZZ=ON -DBPFBROKER_FUZZ_SANITIZERS=address,undefined -DBPFBROKER_TESTS=OFF \
            -DBPFBROKER_BENCH=OFF >"$config_log" 2>&1; then
        cat "$config_log" >&2
        die "cmake configure failed (log: $config_log)"
    fi
else
    cxx=$(pick "${BPFBROKER_FUZZ_CXX:-}" clang++ clang++-14) || die "clang++ not found (apt-get install clang libclang-rt-14-dev)"
    cc=$(pick "${BPFBROKER_FUZZ_CC:-}" clang clang-14) || die "clang not found"
    if ! cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
            -DBPFBROKER_FUZZ=ON -DBPFBROKER_FUZZ_SANITIZERS=address,undefined -DBPFBROKER_TESTS=OFF -DBPFBROKER_BENCH=OFF >"$config_log" 2>&1; then
        cat "$config_log" >&2
        rm -f "$cache"  # a half-written cache would pin a broken configuration
        die "cmake configure failed (log: $config_log)"
    fi
fi

# --- build --------------------------------------------------------------------
build_log="$build/run-fuzzers-build.log"
jobs=$(nproc 2>/dev/null || echo 2)
if ! cmake --build "$build" --target "${fuzzers[@]}" -j "$jobs" >"$build_log" 2>&1; then
    tail -n 60 "$build_log" >&2
    die "build failed (log: $build_log)"
fi

# --- run ----------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/bpfbroker-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [[ -z ${ASAN_SYMBOLIZER_PATH:-} ]] && ! command -v llvm-symbolizer >/dev/null 2>&1; then
    sym=$(pick llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer) && export ASAN_SYMBOLIZER_PATH=$sym
fi

read -r -a extra_flags <<<"${BPFBROKER_FUZZ_FLAGS:-}"
status=0
for f in "${fuzzers[@]}"; do
    bin="$build/fuzz/$f"
    [[ -x $bin ]] || die "$bin was not built"
    seeds="$root/fuzz/corpus/${corpus_of[$f]}"
    corpus="$work/$f-corpus"
    mkdir -p "$corpus"
    if [[ -d $seeds ]]; then
        cp -R "$seeds/." "$corpus/"
    fi
    log="$work/$f.log"
    rc=0
    # -timeout: one input taking longer than this is a finding, not a hang.
    "$bin" -max_total_time="$duration" -dict="$root/fuzz/json.dict" -rss_limit_mb=2048 \
        -timeout=25 -print_final_stats=1 -artifact_prefix="$artifacts/$f-" \
        "${extra_flags[@]}" "$corpus" >"$log" 2>&1 || rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [[ -z $execs ]]; then  # no final stats (killed hard): use the last status line
        execs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    fi
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1 |
          awk '{print "cov=" $2 " ft=" $4 " corpus=" $6}' || true)
    summary="execs=${execs:-?}${rate:+ (${rate}/s)} ${cov:-cov=?} time=${duration}s"

    if [[ $rc -eq 0 ]]; then
        echo "$f: PASS  $summary"
    else
        status=1
        crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
        kept_log="$artifacts/$f-$(date +%Y%m%d-%H%M%S).log"
        cp "$log" "$kept_log"
        echo "---- $f output (last 60 lines) ----"
        tail -n 60 "$log"
        echo "----"
        echo "$f: FAIL  $summary exit=$rc crash=${crash:-none} log=$kept_log"
        if [[ -n $crash ]]; then
            echo "  reproduce: $bin $crash"
        fi
    fi
done
exit "$status"
