// The host's one error style. fl_status stays at the ABI; inside the host a call that can fail returns result<T>
// (result<> when it has no value): the value, or a failure that carries the ABI status and one clear reason for an
// operator ("create_device(modbus-gas-valve) returned -4: config key 'poll_ms': 5 is outside 10..3600000").
// Where a caller needs more than a reason, the error is a type of its own, result<T, E>: the loader's load_error
// (which refusal, for the certifier's report), the site reader's list of config_errors (every file:line:key at once).
// A result<T> compares equal to an fl_status (FL_OK when it holds a value), so `if (rt.start(id) != FL_OK)` reads as
// the ABI does, and a test's EXPECT_EQ(r, FL_OK) prints the reason when it fails.
#pragma once

#include <firelink/abi.h>

#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

namespace firelink {

struct failure {
    fl_status status = FL_ERROR;  // never FL_OK: a result made from a failure with FL_OK holds FL_ERROR
    std::string why;
};

namespace detail {
// A failure is never a success in disguise: `!r` and `r == FL_OK` must not both hold.
template <class E>
E never_ok(E e) {
    if constexpr (std::is_same_v<E, failure>)
        if (e.status == FL_OK) e.status = FL_ERROR;
    return e;
}
}  // namespace detail

template <class T = void, class E = failure>
class result {
public:
    // Anything a T can be made from is a success, implicitly only where T converts from it (as std::expected
    // takes it: returning FL_INVALID_ARGUMENT from a result<std::vector<...>> does not compile); an E is a failure.
    template <class U = T>
        requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::remove_cvref_t<U>, result> &&
                 !std::is_same_v<std::remove_cvref_t<U>, E>)
    explicit(!std::is_convertible_v<U &&, T>) result(U &&value) : value_(std::forward<U>(value)) {}
    result(E e) : error_(detail::never_ok(std::move(e))) {}  // NOLINT: implicit by design
    static result fail(fl_status status, std::string why)
        requires std::is_same_v<E, failure>
    {
        return failure{status, std::move(why)};
    }

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }
    const E &error() const & { return error_; }
    E &&error() && { return std::move(error_); }
    fl_status status() const
        requires std::is_same_v<E, failure>
    {
        return ok() ? FL_OK : error_.status;
    }
    const std::string &why() const  // empty on success
        requires std::is_same_v<E, failure>
    {
        return error_.why;
    }

    T &value() & { return *value_; }
    const T &value() const & { return *value_; }
    T &&value() && { return std::move(*value_); }
    T &operator*() & { return *value_; }
    const T &operator*() const & { return *value_; }
    T *operator->() { return &*value_; }
    const T *operator->() const { return &*value_; }

private:
    std::optional<T> value_;
    E error_{};
};

template <class E>
class result<void, E> {
public:
    result() = default;                                  // success
    result(E e) : error_(detail::never_ok(std::move(e))), ok_(false) {}  // NOLINT: implicit by design
    static result fail(fl_status status, std::string why)
        requires std::is_same_v<E, failure>
    {
        return failure{status, std::move(why)};
    }
    // The ABI's answer as a result: FL_OK, or the status with its reason.
    static result of(fl_status status, std::string why = {})
        requires std::is_same_v<E, failure>
    {
        return status == FL_OK ? result{} : result{failure{status, std::move(why)}};
    }

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const E &error() const & { return error_; }
    E &&error() && { return std::move(error_); }
    fl_status status() const
        requires std::is_same_v<E, failure>
    {
        return ok_ ? FL_OK : error_.status;
    }
    const std::string &why() const
        requires std::is_same_v<E, failure>
    {
        return error_.why;
    }

private:
    E error_{};
    bool ok_ = true;
};

template <class T>
bool operator==(const result<T> &r, fl_status s) {
    return r.status() == s;
}

inline bool operator==(const failure &a, const failure &b) { return a.status == b.status && a.why == b.why; }

// A failure with exactly this status and reason: EXPECT_EQ(rt.start(id), (failure{FL_MISUSE, "..."})).
template <class T>
bool operator==(const result<T> &r, const failure &f) {
    return !r.ok() && r.error() == f;
}

// For logs and test output: "FL_OK", or "status -4: the reason".
inline std::ostream &operator<<(std::ostream &os, const failure &f) {
    return os << "status " << f.status << ": " << f.why;
}

template <class T>
std::ostream &operator<<(std::ostream &os, const result<T> &r) {
    if (r.ok()) return os << "FL_OK";
    return os << r.error();
}

}  // namespace firelink
