// Scratch roots; see scratch_root.h.
#include "scratch_root.h"

#include "build_paths.h"
#include "command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace bpfbroker::test_support {

std::string ScratchRoot::create(const std::string& prefix, const std::string& parent)
{
    std::string tmpl = parent + "/" + prefix + ".XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
        return "mkdtemp " + tmpl + ": " + errno_text(errno);
    base_ = buf.data();
    root_ = base_ + "/root";
    // mkdtemp makes 0700; children of another uid must reach sockets below it.
    if (::chmod(base_.c_str(), 0755) != 0)
        return "chmod " + base_ + ": " + errno_text(errno);
    return "";
}

std::string ScratchRoot::make_demo_root(Millis timeout)
{
    auto made = run_command({"/bin/bash", source_dir() + "/scripts/make-demo-root.sh", root_, build_dir()}, timeout);
    return made.ok() ? "" : "make-demo-root.sh failed: " + made.describe();
}

std::string ScratchRoot::write_settings(const std::string& json)
{
    const std::string path = root_ + "/etc/bpfbroker/bpfbroker.json";
    if (!write_text_file(path, json, 0644) || ::lchown(path.c_str(), 0, 0) != 0)
        return path + ": " + errno_text(errno);
    return "";
}

std::string ScratchRoot::remove()
{
    if (base_.empty())
        return "";
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
    std::string why = ec ? "cannot remove " + base_ + ": " + ec.message() : "";
    base_.clear();
    root_.clear();
    return why;
}

}  // namespace bpfbroker::test_support
