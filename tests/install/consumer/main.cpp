// A program outside the tree that uses the installed client library: it
// must compile against the installed headers and link libbpfbroker.so.
#include <bpfbroker/client.h>
#include <bpfbroker/uring_attach.h>

#include <cstdio>

int main(int argc, char** argv)
{
    const char* path = argc > 1 ? argv[1] : "/nonexistent/bpfbroker.sock";
    auto client = bpfbroker::Client::connect_socket(path);
    if (client) {
        std::puts("connected");
        return 0;
    }
    // Reaching here proves the library loaded and its error path works.
    std::printf("%s\n", client.error().describe().c_str());
    return client.error().code == bpfbroker::ErrorCode::SystemError ? 0 : 1;
}
