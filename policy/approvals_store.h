// The approvals store, var/lib/bpfbroker/approvals.json: grants made with
// `bpfbrokerctl approve` and revocations made with `revoke`.
//
// Every change is a read-modify-write under an exclusive lock on the state
// directory, and the new file replaces the old one atomically (temporary file
// in the same directory, fsync, rename, fsync of the directory): a crash at
// any instant leaves either the old or the new file, never a torn one.
#pragma once

#include "policy/grants.h"
#include "policy/secure_file.h"

#include <bpfbroker/result.h>

#include <functional>
#include <string>
#include <vector>

namespace bpfbroker::policy {

struct Approvals {
    std::vector<Grant> approvals;
    std::vector<std::string> revoked_programs;

    // Adds a grant, merging principals into an existing grant for the same
    // program and match; lifts a revocation of that program.
    void approve(Grant grant);
    // Removes every approval of `program` and records a revocation that also
    // masks allow-list grants. Returns how many approvals were removed.
    std::size_t revoke(const std::string& program);
};

Result<Approvals> parse_approvals(std::string_view bytes);
std::string serialize_approvals(const Approvals& approvals);

class ApprovalsStore {
public:
    // Reads the store below an opened root; a missing file is an empty store.
    static Result<Approvals> read(int rootfd, const FileTrust& trust);

    // Applies `change` to the current contents and writes the result
    // atomically, creating var/lib/bpfbroker when needed. Returns the new contents.
    static Result<Approvals> update(int rootfd, const FileTrust& trust,
                                    const std::function<Result<void>(Approvals&)>& change);
};

}  // namespace bpfbroker::policy
