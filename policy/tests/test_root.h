// A scratch policy root for tests: a private directory laid out like "/"
// (usr/lib/bpfbroker, etc/bpfbroker, var/lib/bpfbroker), helpers to write
// files with chosen modes, and to sign manifests with a real key.
#pragma once

#include "policy/secure_file.h"
#include "policy/signature.h"

#include <sys/types.h>

#include <string>
#include <string_view>

namespace bpfbroker::policy::testing {

class TempRoot {
public:
    TempRoot();
    ~TempRoot();
    TempRoot(const TempRoot&) = delete;
    TempRoot& operator=(const TempRoot&) = delete;

    [[nodiscard]] const std::string& path() const { return path_; }
    [[nodiscard]] std::string at(std::string_view rel) const { return path_ + "/" + std::string(rel); }
    [[nodiscard]] FileTrust trust() const;

    // Creates directories (0755) as needed and writes `content` (mode 0644).
    void write(std::string_view rel, std::string_view content, unsigned mode = 0644) const;
    [[nodiscard]] std::string read(std::string_view rel) const;
    void mkdirs(std::string_view rel) const;

private:
    std::string path_;
};

// Runs a shell command; returns its exit status (for the real openssl tool).
int run(const std::string& command);
std::string shell_quote(std::string_view s);

// A signed program laid out in programs.d/NAME: manifest.json + .sig + object.
struct ProgramFixture {
    std::string name = "demo";
    std::string object = "demo.bpf.o";
    std::string object_bytes = "not really ELF, only hashed here";
    std::string instance = "per-client";
    std::string version = "1.0.0";
    std::string maps_json = R"([{"name":"stats","client_access":"read"}])";
    std::string requires_json = "[]";

    [[nodiscard]] std::string manifest_json() const;
    // Writes the program below `base` ("usr/lib/bpfbroker" or "etc/bpfbroker") signed by `key`.
    void install(const TempRoot& root, std::string_view base, const PrivateKey& key) const;
};

// Installs `key`'s public half as keys.d/<file> under base.
void install_key(const TempRoot& root, std::string_view base, std::string_view file, const PrivateKey& key);

}  // namespace bpfbroker::policy::testing
