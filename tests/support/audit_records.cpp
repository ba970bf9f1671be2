// Reading the audit log in tests; see audit_records.h.
#include "support/audit_records.h"

#include "support/io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace bpfbroker::test_support {

std::optional<AuditFields> parse_audit_line(std::string_view line)
{
    constexpr std::string_view kPrefix = "audit: ";
    if (line.substr(0, kPrefix.size()) != kPrefix)
        return std::nullopt;
    line.remove_prefix(kPrefix.size());
    AuditFields fields;
    std::size_t i = 0;
    while (i < line.size()) {
        auto eq = line.find('=', i);
        if (eq == std::string_view::npos)
            return std::nullopt;
        std::string key(line.substr(i, eq - i));
        i = eq + 1;
        std::string value;
        if (i < line.size() && line[i] == '"') {
            ++i;
            bool closed = false;
            while (i < line.size()) {
                char c = line[i++];
                if (c == '\\' && i < line.size()) {
                    value += line[i++];
                } else if (c == '"') {
                    closed = true;
                    break;
                } else {
                    value += c;
                }
            }
            if (!closed)
                return std::nullopt;
        } else {
            auto sp = line.find(' ', i);
            value = std::string(line.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i));
            i = sp == std::string_view::npos ? line.size() : sp;
        }
        if (!fields.emplace(key, value).second)
            return std::nullopt;  // a repeated key would mean a forged field
        while (i < line.size() && line[i] == ' ')
            ++i;
    }
    return fields;
}

std::vector<AuditFields> read_audit_records(const std::string& path)
{
    std::vector<AuditFields> out;
    std::istringstream in(read_text_file(path));
    for (std::string line; std::getline(in, line);) {
        auto fields = parse_audit_line(line);
        if (fields)
            out.push_back(std::move(*fields));
        else
            ADD_FAILURE() << "unparseable audit line: " << line;
    }
    return out;
}

bool has_audit_record(const std::vector<AuditFields>& records, const AuditFields& fields)
{
    return std::any_of(records.begin(), records.end(), [&fields](const AuditFields& r) {
        return std::all_of(fields.begin(), fields.end(), [&r](const auto& kv) {
            auto it = r.find(kv.first);
            return it != r.end() && it->second == kv.second;
        });
    });
}

}  // namespace bpfbroker::test_support
