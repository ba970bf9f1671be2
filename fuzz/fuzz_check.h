// The oracle of the wire fuzzers: a property that does not hold stops the
// run with a trap, which libFuzzer reports with the input that caused it.
#pragma once

namespace bpfbroker::fuzz {

inline void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

}  // namespace bpfbroker::fuzz
