// Scratch policy roots for policy tests; see test_root.h.
#include "test_root.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bpfbroker::policy::testing {

TempRoot::TempRoot()
{
    char tmpl[] = "/tmp/bpfbroker-test-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (!p)
        throw std::runtime_error("mkdtemp failed");
    path_ = p;
    ::chmod(path_.c_str(), 0755);
    for (auto d : {"usr/lib/bpfbroker/programs.d", "usr/lib/bpfbroker/keys.d", "usr/lib/bpfbroker/allowlist.d",
                   "etc/bpfbroker/programs.d", "etc/bpfbroker/keys.d", "etc/bpfbroker/allowlist.d"})
        mkdirs(d);
}

TempRoot::~TempRoot()
{
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

FileTrust TempRoot::trust() const
{
    return FileTrust{::geteuid()};
}

void TempRoot::mkdirs(std::string_view rel) const
{
    std::filesystem::path p = path_;
    for (const auto& part : std::filesystem::path(rel)) {
        p /= part;
        if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST)
            throw std::runtime_error("mkdir " + p.string());
        ::chmod(p.c_str(), 0755);
    }
}

void TempRoot::write(std::string_view rel, std::string_view content, unsigned mode) const
{
    auto full = std::filesystem::path(at(rel));
    mkdirs(std::filesystem::path(rel).parent_path().string());
    std::filesystem::remove(full);
    std::ofstream out(full, std::ios::binary);
    out << content;
    out.close();
    ::chmod(full.c_str(), mode);
}

std::string TempRoot::read(std::string_view rel) const
{
    std::ifstream in(at(rel), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string shell_quote(std::string_view s)
{
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

int run(const std::string& command)
{
    int status = std::system((command + " >/dev/null 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ProgramFixture::manifest_json() const
{
    return R"({"schema":1,"name":")" + name + R"(","version":")" + version +
           R"(","description":"test program","object":")" + object + R"(","object_sha256":")" +
           sha256_hex(object_bytes) + R"(","programs":[{"name":"count","type":"socket_filter"}],"maps":)" +
           maps_json + R"(,"instance":")" + instance + R"(","requires":)" + requires_json + "}";
}

void ProgramFixture::install(const TempRoot& root, std::string_view base, const PrivateKey& key) const
{
    std::string dir = std::string(base) + "/programs.d/" + name + "/";
    auto manifest = manifest_json();
    auto sig = key.sign(manifest);
    ASSERT_TRUE(sig) << sig.error().describe();
    root.write(dir + "manifest.json", manifest);
    root.write(dir + "manifest.json.sig", *sig);
    root.write(dir + object, object_bytes);
}

void install_key(const TempRoot& root, std::string_view base, std::string_view file, const PrivateKey& key)
{
    root.write(std::string(base) + "/keys.d/" + std::string(file), key.public_key_pem());
}

}  // namespace bpfbroker::policy::testing
