// Errors as values across module boundaries.
//
// Exceptions are reserved for programmer errors (a broken invariant); anything
// the outside world can cause (a missing file, a refused connection, a bad
// frame) travels as an Error inside a Result.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tether {

// The closed set of error kinds across module boundaries (as libuv's UV_E*
// codes): callers decide by kind; `code` says more, for logs and messages.
enum class Errc {
  kCancelled,     // the awaited operation's cancellation token fired
  kInvalid,       // bad input: a flag, a config key, a field, a URL (the message names it)
  kNotFound,      // no such thing: task, agent, token, file, route, program
  kExists,        // already there: an agent name, a socket in use
  kUnauthorized,  // credentials missing, unknown, expired or not allowed here
  kRefused,       // the peer answered no (an HTTP error status, a refused handshake)
  kUnreachable,   // no connection: name resolution, TCP, TLS
  kTimeout,       // no answer in time
  kBusy,          // a lock or resource held elsewhere: the same call may succeed later
  kState,         // not possible now: already finished, target busy, not running
  kProtocol,      // the peer's bytes break the protocol: malformed JSON, frame, version
  kIo,            // the system failed: errno, storage, a socket
};
std::string_view to_string(Errc kind);

struct Error {
  Errc kind = Errc::kIo;
  // Stable, machine-readable, snake_case ("not_found", "cancelled").
  std::string code;
  // For people: names the thing that failed and why.
  std::string message;
  // The HTTP status of a refusal (a WebSocket handshake answered 401), else 0.
  int http_status = 0;
};

inline Error make_error(Errc kind, std::string code, std::string message) {
  return Error{kind, std::move(code), std::move(message)};
}

// `cause` with a message that says what was being done: its kind, code and
// HTTP status stay.
inline Error with_context(const Error& cause, std::string message) {
  Error error = cause;
  error.message = std::move(message);
  return error;
}

// The code every cancellable await returns when its token fired first.
inline constexpr const char* kCancelled = "cancelled";

inline Error cancelled_error() {
  return Error{Errc::kCancelled, kCancelled, "operation cancelled"};
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
