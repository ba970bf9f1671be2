// A ProgramSource for unit tests of the core: "loads" an entry without BPF,
// making one program and its manifest's maps as placeholder fds (memfds)
// with ids from a range the kernel does not hand out in practice, and
// counts the loads. Lets the Broker's decisions be tested without root.
#pragma once

#include "brokerd/program_source.h"

#include <atomic>
#include <functional>

namespace bpfbroker::test_support {

class FakeProgramSource final : public brokerd::ProgramSource {
public:
    Result<brokerd::LoadedInstance> load(const policy::CatalogEntry& entry,
                                         const brokerd::ParameterValues& parameters) override;
    // Attaches nothing: broker-attached programs are tested on the kernel (tests/e2e).
    Result<std::vector<brokerd::AttachedLink>> attach(const brokerd::LoadedInstance& instance) override;
    Result<UniqueFd> map_fd_for_client(const brokerd::LoadedMap& map) override;
    Result<UniqueFd> program_fd_for_client(const UniqueFd& fd) override;

    // Loads so far (shared instances load once).
    [[nodiscard]] unsigned loads() const { return loads_.load(); }
    // Run inside each load, as the kernel's verifier would take its time:
    // lets a test change the policy while a hand-out is being made.
    std::function<void()> while_loading;

private:
    std::atomic<unsigned> loads_{0};
    std::atomic<std::uint32_t> next_id_{0x7ff00000u};
};

}  // namespace bpfbroker::test_support
