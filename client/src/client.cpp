// The transport-independent half of Client: forwards each call to the
// transport, which decodes its reply once, and checks what holds on every
// transport (the reply is for the program asked for, and hands out either a
// program or links, never both). See client.h.
#include <bpfbroker/client.h>

#include <linux/io_uring.h>

namespace bpfbroker {

namespace {

Unexpected bad_reply(const std::string& why)
{
    return fail(ErrorCode::ProtocolError, "malformed reply from bpfbrokerd: " + why);
}

}  // namespace

const ProgramInfo& Program::moved_from_info() noexcept
{
    static const ProgramInfo empty;
    return empty;
}

const UniqueFd* Program::map(std::string_view name) const
{
    auto it = maps_.find(std::string(name));
    return it == maps_.end() ? nullptr : &it->second;
}

Result<Program> Client::acquire(std::string_view name)
{
    return checked_acquire(name, AcquireOptions{}, false);
}

Result<Program> Client::acquire(std::string_view name, const AcquireOptions& options)
{
    return checked_acquire(name, options, true);
}

Result<Program> Client::checked_acquire(std::string_view name, const AcquireOptions& options, bool with_options)
{
    auto program = transport_->acquire(name, options, with_options);
    if (!program)
        return program;
    // Attaching the wrong program would be silent; refuse a reply for another name.
    if (program->info().name != name)
        return bad_reply("asked for \"" + std::string(name) + "\" but the reply is for \"" + program->info().name + "\"");
    // A program fd next to links would let the holder attach the program
    // elsewhere; a reply with neither gives nothing to use.
    if (program->fd().valid() == !program->links().empty())
        return bad_reply("a reply must hand out either a program or links");
    return program;
}

Result<Program> Transport::attach_ring(std::string_view name, int, const std::map<std::string, std::uint64_t>&,
                                       const AcquireOptions&)
{
    return fail(ErrorCode::Unsupported, "attaching \"" + std::string(name) + "\" to a ring needs the socket "
                                        "transport: the broker copies the ring with pidfd_getfd on the "
                                        "connection's pidfd, which D-Bus cannot give");
}

Result<Program> Client::attach_ring(std::string_view name, int ring_fd, const io_uring_params& params,
                                    const AcquireOptions& options)
{
    const std::map<std::string, std::uint64_t> ring{
        {"flags", params.flags},           {"sq_entries", params.sq_entries},   {"cq_entries", params.cq_entries},
        {"cq_head_off", params.cq_off.head}, {"cq_tail_off", params.cq_off.tail}, {"cqes_off", params.cq_off.cqes},
    };
    auto program = transport_->attach_ring(name, ring_fd, ring, options);
    if (!program)
        return program;
    if (program->info().name != name)
        return bad_reply("asked for \"" + std::string(name) + "\" but the reply is for \"" + program->info().name + "\"");
    // One link and no program: with the program fd the holder could run it elsewhere.
    if (program->fd().valid() || program->links().size() != 1)
        return bad_reply("a ring attach must hand out exactly one link and no program");
    return program;
}

Result<std::vector<ProgramEntry>> Client::list_programs()
{
    return transport_->list_programs();
}

Result<std::vector<Feature>> Client::features()
{
    return transport_->features();
}

Result<std::string> Client::metrics()
{
    return transport_->metrics();
}

Result<std::string> Client::approve(std::string_view program, const ApproveOptions& options)
{
    return transport_->approve(program, options);
}

Result<RevokeResult> Client::revoke(std::string_view program)
{
    return transport_->revoke(program);
}

Result<void> Client::reload()
{
    return transport_->reload();
}

}  // namespace bpfbroker
