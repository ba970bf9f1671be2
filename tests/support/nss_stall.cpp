// The stalling user database from the test's side; see nss_stall.h.
#include "nss_stall.h"

#include "build_paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <thread>

namespace bpfbroker::test_support {

using namespace std::chrono_literals;

std::map<std::string, std::string> NssStall::daemon_env() const
{
    return {{"LD_PRELOAD", nss_stall_preload()},
            {"BPFBROKER_TEST_STALL_UID", std::to_string(uid)},
            {"BPFBROKER_TEST_STALL_MARK", mark_path()},
            {"BPFBROKER_TEST_STALL_RELEASE", release_path()}};
}

bool NssStall::begun(Millis timeout) const
{
    for (auto waited = Millis(0); waited < timeout; waited += 20ms) {
        struct stat st {};
        if (::stat(mark_path().c_str(), &st) == 0)
            return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

bool NssStall::release() const
{
    return write_text_file(release_path(), "", 0644);
}

void NssStall::remove() const
{
    ::unlink(mark_path().c_str());
    ::unlink(release_path().c_str());
}

}  // namespace bpfbroker::test_support
