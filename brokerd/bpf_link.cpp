// Broker-side attach of tracepoint and raw_tracepoint programs; see bpf_link.h.
#include "brokerd/bpf_link.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <linux/perf_event.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace bpfbroker::brokerd {

namespace {

using policy::ProgramType;

// The tracepoint's id from tracefs. The root must really be tracefs: a
// plain directory there (tracefs not mounted, something planted) would
// make us attach to whatever id a file says.
Result<std::uint64_t> tracepoint_id(const std::string& tracefs_root, const std::string& attach)
{
    struct statfs fs {};
    if (::statfs(tracefs_root.c_str(), &fs) != 0 || fs.f_type != TRACEFS_MAGIC)
        return fail(ErrorCode::Unsupported,
                    "tracefs is not mounted at " + tracefs_root +
                        ", so tracepoint \"" + attach + "\" has no id to attach to (the daemon does not mount it; "
                        "mount -t tracefs tracefs " + tracefs_root + ", or use a raw_tracepoint program)");
    // The manifest's attach point is CATEGORY/NAME of [A-Za-z0-9_] only.
    const std::string path = tracefs_root + "/events/" + attach + "/id";
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd)
        return fail(Error{ErrorCode::Unsupported, "this kernel has no tracepoint \"" + attach + "\" (" + path + ")",
                          errno, {}});
    char text[32] = {};
    const ssize_t n = ::read(fd.get(), text, sizeof(text) - 1);
    std::uint64_t id = 0;
    auto [end, ec] = std::from_chars(text, text + (n > 0 ? n : 0), id);
    if (n <= 0 || ec != std::errc{} || (end != text + n && *end != '\n'))
        return fail(ErrorCode::Internal, "cannot read the id of tracepoint \"" + attach + "\" from " + path);
    return id;
}

Result<UniqueFd> attach_tracepoint(const LoadedProgram& program, const AttachOptions& options)
{
    auto id = tracepoint_id(options.tracefs_root, program.attach);
    if (!id)
        return fail(std::move(id).error());
    perf_event_attr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = *id;
    // pid -1, cpu 0: a tracepoint's BPF programs run on every CPU whatever
    // CPU the event that carries them is bound to.
    UniqueFd event(static_cast<int>(::syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)));
    if (!event)
        return fail(make_system_error("perf_event_open of tracepoint \"" + program.attach + "\" failed", errno));
    UniqueFd link(bpf_link_create(program.fd.get(), event.get(), BPF_PERF_EVENT, nullptr));
    if (!link)
        return fail(make_system_error("attaching " + program.name + " to tracepoint \"" + program.attach + "\" failed",
                                      errno));
    return link;  // `event` closes here; the link holds the perf event.
}

Result<UniqueFd> attach_one(const LoadedProgram& program, const AttachOptions& options)
{
    switch (program.type) {
    case ProgramType::RawTracepoint: {
        // The kernel makes every bpf link fd O_CLOEXEC.
        UniqueFd link(bpf_raw_tracepoint_open(program.attach.c_str(), program.fd.get()));
        if (!link)
            return fail(make_system_error("attaching " + program.name + " to raw tracepoint \"" + program.attach +
                                              "\" failed",
                                          errno));
        return link;
    }
    case ProgramType::Tracepoint:
        return attach_tracepoint(program, options);
    case ProgramType::IoUringOps:
        return fail(ErrorCode::Internal, "program " + program.name + " is registered on a ring (ring_attach.h)");
    case ProgramType::SocketFilter:
    case ProgramType::SkReuseport:
        break;
    }
    return fail(ErrorCode::Internal, "program " + program.name + " is attached by the client, not the broker");
}

}  // namespace

Result<std::vector<AttachedLink>> attach_for_caller(const LoadedInstance& instance, const AttachOptions& options)
{
    if (instance.programs.empty())
        return fail(ErrorCode::Internal, "an instance to attach has no program");
    std::vector<AttachedLink> links;
    for (const LoadedProgram& program : instance.programs) {
        auto link = attach_one(program, options);
        if (!link)
            return fail(std::move(link).error());  // `links` closes: what was attached detaches
        links.push_back({program.name, std::move(*link)});
    }
    return links;
}

}  // namespace bpfbroker::brokerd
