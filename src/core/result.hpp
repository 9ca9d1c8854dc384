// Errors as values across module boundaries.
//
// Exceptions are reserved for programmer errors (a broken invariant); anything
// the outside world can cause (a missing file, a refused connection, a bad
// frame) travels as an Error inside a Result.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tether {

struct Error {
  // Stable, machine-readable, snake_case ("not_found", "cancelled").
  std::string code;
  // For people: names the thing that failed and why.
  std::string message;
  // The HTTP status of a refusal (a WebSocket handshake answered 401), else 0.
  int http_status = 0;
};

inline Error make_error(std::string code, std::string message) {
  return Error{std::move(code), std::move(message)};
}

// The code every cancellable await returns when its token fired first.
inline constexpr const char* kCancelled = "cancelled";

inline Error cancelled_error() {
  return Error{kCancelled, "operation cancelled"};
}

// Declares `name` as the Result of `expression`, and returns its error from
// the enclosing function if it failed: the "return the error if any" step,
// written once.
//   TETHER_TRY(seq, object.required_uint("seq"));  // then *seq
#define TETHER_TRY(name, expression) \
  auto name = (expression);          \
  if (!name) return name.error()

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value)
      : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const Error& error() const { return std::get<1>(state_); }
  bool is_cancelled() const { return !ok() && error().code == kCancelled; }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }
  bool is_cancelled() const { return !ok() && error_->code == kCancelled; }

 private:
  std::optional<Error> error_;
};

}  // namespace tether
