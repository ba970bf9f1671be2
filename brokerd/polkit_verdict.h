// polkit's answer for one caller and action, as the core receives it when a
// transport calls again after a PolkitQuestion. Only PolkitAuthority (which
// asked polkit itself) can make one, so a transport cannot hand the core a
// "polkit said yes" of its own; the core still checks that the verdict is
// about this caller and this action.
#pragma once

#include <bpfbroker/interface.h>  // the polkit action ids

#include <sys/types.h>

#include <string>
#include <utility>

namespace bpfbroker::brokerd {

class PolkitVerdict {
public:
    [[nodiscard]] bool allowed() const { return allowed_; }
    [[nodiscard]] const std::string& action() const { return action_; }
    [[nodiscard]] uid_t uid() const { return uid_; }
    [[nodiscard]] const std::string& bus_name() const { return bus_name_; }
    // polkit's words, or why it could not be asked.
    [[nodiscard]] const std::string& why() const { return why_; }

private:
    PolkitVerdict(bool allowed, std::string action, uid_t uid, std::string bus_name, std::string why)
        : allowed_(allowed), action_(std::move(action)), uid_(uid), bus_name_(std::move(bus_name)), why_(std::move(why))
    {
    }
    friend class PolkitAuthority;
    friend struct PolkitVerdictForTesting;  // defined only in the unit tests

    bool allowed_;
    std::string action_;
    uid_t uid_;
    std::string bus_name_;
    std::string why_;
};

}  // namespace bpfbroker::brokerd
