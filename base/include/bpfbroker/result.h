// Result<T>: a value or an Error, shaped like std::expected (which g++ 12 in
// C++20 mode lacks) so that it can be swapped for it later. Recoverable errors
// travel as Results; exceptions are only for what ends the program.
#pragma once

#include <bpfbroker/error.h>

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace bpfbroker {

// Wraps an Error so that `return Unexpected{err}` converts to any Result<T>.
struct Unexpected {
    Error error;
};
inline Unexpected fail(ErrorCode code, std::string message)
{
    return Unexpected{make_error(code, std::move(message))};
}
inline Unexpected fail(Error error) { return Unexpected{std::move(error)}; }

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Unexpected u) : v_(std::in_place_index<1>, std::move(u.error)) {}
    template <typename U,
              typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                          !std::is_same_v<std::decay_t<U>, T> &&
                                          !std::is_same_v<std::decay_t<U>, Unexpected>>>
    Result(U&& value) : v_(std::in_place_index<0>, T(std::forward<U>(value)))
    {
    }

    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { assert(has_value()); return std::get<0>(v_); }
    const T& value() const& { assert(has_value()); return std::get<0>(v_); }
    T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { assert(!has_value()); return std::get<1>(v_); }
    Error&& error() && { assert(!has_value()); return std::get<1>(std::move(v_)); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Unexpected u) : error_(std::move(u.error)), ok_(false) {}

    [[nodiscard]] bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const Error& error() const& { assert(!ok_); return error_; }
    Error&& error() && { assert(!ok_); return std::move(error_); }

private:
    Error error_;
    bool ok_ = true;
};

}  // namespace bpfbroker
