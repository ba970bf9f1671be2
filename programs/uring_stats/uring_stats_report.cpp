// Reading and showing uring_stats's maps; see uring_stats_report.h.
#include "uring_stats_report.h"

#include "uring_stats.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

namespace bpfbroker::uring_stats {

namespace {

// Opcode -> name from the running kernel's enum io_uring_op.
std::map<unsigned, std::string> kernel_opcode_names()
{
    std::map<unsigned, std::string> names;
    btf* vmlinux = btf__load_vmlinux_btf();
    if (vmlinux == nullptr)
        return names;
    const int id = btf__find_by_name_kind(vmlinux, "io_uring_op", BTF_KIND_ENUM);
    if (id > 0) {
        const btf_type* t = btf__type_by_id(vmlinux, static_cast<__u32>(id));
        const struct btf_enum* values = btf_enum(t);
        constexpr std::string_view kPrefix = "IORING_OP_";
        for (unsigned i = 0; i < btf_vlen(t); ++i) {
            std::string_view name = btf__name_by_offset(vmlinux, values[i].name_off);
            if (name.starts_with(kPrefix) && name != "IORING_OP_LAST" && values[i].val >= 0)
                names.emplace(static_cast<unsigned>(values[i].val), name.substr(kPrefix.size()));
        }
    }
    btf__free(vmlinux);
    return names;
}

std::string errno_name(int error)
{
    const char* name = ::strerrorname_np(error);
    return name != nullptr ? name : "E" + std::to_string(error);
}

// Every key of an array map [0, entries), with its value; stops at the first failed lookup.
template <typename Value, typename Visit>
Result<void> for_each_entry(int fd, const char* map, unsigned entries, Visit&& visit)
{
    for (__u32 key = 0; key < entries; ++key) {
        Value value{};
        if (bpf_map_lookup_elem(fd, &key, &value) != 0)
            return fail(make_system_error(std::string("reading uring_stats's \"") + map + "\" map", errno));
        visit(key, value);
    }
    return {};
}

// "512 ns", "1.0 us", "16.8 ms", "4.3 s": the bucket bounds, short.
std::string duration_text(std::uint64_t ns)
{
    char out[32];
    if (ns < 1000)
        std::snprintf(out, sizeof out, "%llu ns", static_cast<unsigned long long>(ns));
    else if (ns < 1000 * 1000)
        std::snprintf(out, sizeof out, "%.1f us", static_cast<double>(ns) / 1e3);
    else if (ns < 1000ull * 1000 * 1000)
        std::snprintf(out, sizeof out, "%.1f ms", static_cast<double>(ns) / 1e6);
    else
        std::snprintf(out, sizeof out, "%.1f s", static_cast<double>(ns) / 1e9);
    return out;
}

std::string row(const std::string& indent, const char* format, ...) __attribute__((format(printf, 2, 3)));
std::string row(const std::string& indent, const char* format, ...)
{
    char line[160];
    va_list args;
    va_start(args, format);
    std::vsnprintf(line, sizeof line, format, args);
    va_end(args);
    return indent + line + "\n";
}

}  // namespace

std::string opcode_name(unsigned opcode)
{
    static std::once_flag once;
    static std::map<unsigned, std::string> names;
    std::call_once(once, [] { names = kernel_opcode_names(); });
    auto it = names.find(opcode);
    return it != names.end() ? it->second : "OP_" + std::to_string(opcode);
}

Result<Snapshot> read_snapshot(int ops_fd, int errors_fd, int latency_fd)
{
    Snapshot s;
    auto ops = for_each_entry<uring_op_counts>(ops_fd, "ops", URING_STATS_MAX_OPCODES,
                                               [&](__u32 opcode, const uring_op_counts& c) {
                                                   if (c.submitted != 0 || c.completed != 0)
                                                       s.ops.push_back({opcode, opcode_name(opcode), c.submitted,
                                                                        c.completed});
                                               });
    if (!ops)
        return fail(std::move(ops).error());
    auto errors = for_each_entry<__u64>(errors_fd, "errors", URING_STATS_MAX_ERRNO, [&](__u32 error, __u64 count) {
        if (count != 0)
            s.errors.push_back({static_cast<int>(error), errno_name(static_cast<int>(error)), count});
    });
    if (!errors)
        return fail(std::move(errors).error());
    auto latency = for_each_entry<__u64>(latency_fd, "latency", URING_STATS_LATENCY_BUCKETS, [&](__u32 b, __u64 count) {
        // Bucket 0 also holds 0 ns; bucket 63's upper bound is 2^64, shown as the largest value.
        if (count != 0)
            s.latency.push_back({b == 0 ? 0 : 1ull << b, b == 63 ? UINT64_MAX : 1ull << (b + 1), count});
    });
    if (!latency)
        return fail(std::move(latency).error());
    return s;
}

nlohmann::json to_json(const Snapshot& s)
{
    nlohmann::json ops = nlohmann::json::object();
    for (const auto& o : s.ops)
        ops[o.name] = {{"opcode", o.opcode}, {"submitted", o.submitted}, {"completed", o.completed}};
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& e : s.errors)
        errors[e.name] = {{"errno", e.error}, {"completions", e.completions}};
    nlohmann::json latency = nlohmann::json::array();
    for (const auto& b : s.latency)
        latency.push_back({{"min_ns", b.min_ns}, {"max_ns", b.max_ns}, {"requests", b.requests}});
    return {{"ops", ops}, {"errors", errors}, {"latency", latency}};
}

std::string to_table(const Snapshot& s, const std::string& indent)
{
    if (s.ops.empty() && s.errors.empty() && s.latency.empty())
        return indent + "no io_uring requests\n";
    std::string out = row(indent, "%-20s %12s %12s", "opcode", "submitted", "completed");
    for (const auto& o : s.ops)
        out += row(indent, "%-20s %12llu %12llu", o.name.c_str(), static_cast<unsigned long long>(o.submitted),
                   static_cast<unsigned long long>(o.completed));
    if (!s.errors.empty()) {
        out += row(indent, "%-20s %6s %18s", "failed with", "errno", "completions");
        for (const auto& e : s.errors)
            out += row(indent, "%-20s %6d %18llu", e.name.c_str(), e.error,
                       static_cast<unsigned long long>(e.completions));
    }
    if (!s.latency.empty()) {
        out += row(indent, "%-33s %12s", "submit -> first completion", "requests");
        for (const auto& b : s.latency) {
            const std::string range = duration_text(b.min_ns) + " .. " + duration_text(b.max_ns);
            out += row(indent, "%-33s %12llu", range.c_str(), static_cast<unsigned long long>(b.requests));
        }
    }
    return out;
}

}  // namespace bpfbroker::uring_stats
