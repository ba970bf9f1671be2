// What the core answers to one request: the result (a hand-out, a grant,
// ...), a denial (already audited), or a question for polkit that the
// transport asks before calling the core again with the verdict
// (systemd's re-entrant pattern: the core decides, the transport only
// carries the question and the answer).
#pragma once

#include <bpfbroker/error.h>

#include <string>
#include <utility>
#include <variant>

namespace bpfbroker::brokerd {

// "Ask polkit whether the caller may do `action`, then call again."
struct PolkitQuestion {
    std::string action;  // org.bpfbroker.acquire, org.bpfbroker.manage
};

template <typename T>
class Outcome {
public:
    Outcome(T value) : v_(std::move(value)) {}
    Outcome(Error error) : v_(std::move(error)) {}
    Outcome(PolkitQuestion question) : v_(std::move(question)) {}

    [[nodiscard]] bool ok() const { return std::holds_alternative<T>(v_); }
    [[nodiscard]] bool denied() const { return std::holds_alternative<Error>(v_); }
    [[nodiscard]] bool needs_polkit() const { return std::holds_alternative<PolkitQuestion>(v_); }

    [[nodiscard]] T& value() { return std::get<T>(v_); }
    [[nodiscard]] const T& value() const { return std::get<T>(v_); }
    [[nodiscard]] const Error& error() const { return std::get<Error>(v_); }
    [[nodiscard]] const PolkitQuestion& question() const { return std::get<PolkitQuestion>(v_); }

private:
    std::variant<T, Error, PolkitQuestion> v_;
};

}  // namespace bpfbroker::brokerd
