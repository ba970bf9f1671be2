// A scratch directory for one test, /tmp/PREFIX.XXXXXX, holding an
// installation root for bpfbrokerd at root/ (laid out by
// scripts/make-demo-root.sh: the built programs and the development key)
// and, beside it, whatever else the test keeps (logs, sockets). The
// directory is mode 0755 so that children running as another uid reach
// sockets inside it. Removed by remove() or, at the latest, the destructor.
#pragma once

#include "io.h"

#include <string>

namespace bpfbroker::test_support {

class ScratchRoot {
public:
    ScratchRoot() = default;
    ~ScratchRoot() { (void)remove(); }
    ScratchRoot(const ScratchRoot&) = delete;
    ScratchRoot& operator=(const ScratchRoot&) = delete;

    // Makes the directory (<parent>/<prefix>.XXXXXX, mode 0755); "" or what failed.
    std::string create(const std::string& prefix, const std::string& parent = "/tmp");
    [[nodiscard]] bool created() const { return !base_.empty(); }

    // The scratch directory itself.
    [[nodiscard]] const std::string& base() const { return base_; }
    // base()/root: the installation root for bpfbrokerd --root.
    [[nodiscard]] const std::string& root() const { return root_; }
    // base()/name.
    [[nodiscard]] std::string path(const std::string& name) const { return base_ + "/" + name; }

    // Lays out root() with scripts/make-demo-root.sh; "" or what failed.
    std::string make_demo_root(Millis timeout = 60s);
    // Writes root()/etc/bpfbroker/bpfbroker.json (0644, owned by root); "" or what failed.
    std::string write_settings(const std::string& json);

    // Removes the directory and everything in it; "" or what failed. A
    // second call does nothing.
    std::string remove();

private:
    std::string base_;
    std::string root_;
};

}  // namespace bpfbroker::test_support
