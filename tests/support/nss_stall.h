// The stalling user database (nss_stall_preload.c) from the test's side:
// the environment that preloads it into bpfbrokerd and names the uid whose
// getpwuid_r blocks, whether the stall has begun, and its release. The
// marker files live in `dir`, which the test removes afterwards.
#pragma once

#include "io.h"

#include <sys/types.h>

#include <map>
#include <string>

namespace bpfbroker::test_support {

struct NssStall {
    uid_t uid;
    std::string dir;

    // For the daemon's environment: LD_PRELOAD and the stall's settings.
    [[nodiscard]] std::map<std::string, std::string> daemon_env() const;
    // Whether a lookup of `uid` has begun to stall, waiting up to `timeout`.
    [[nodiscard]] bool begun(Millis timeout) const;
    // Lets every stalled lookup (and every later one) return; false when the
    // release file cannot be written.
    bool release() const;
    // Removes the marker files.
    void remove() const;

    [[nodiscard]] std::string mark_path() const { return dir + "/nss-stall-begun"; }
    [[nodiscard]] std::string release_path() const { return dir + "/nss-stall-release"; }
};

}  // namespace bpfbroker::test_support
