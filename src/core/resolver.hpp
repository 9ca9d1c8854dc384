// Name resolution for outgoing connections: every address of a name, in the
// order getaddrinfo(3) sorts them (RFC 6724: on a stock Debian, "localhost"
// is ::1 first, then 127.0.0.1). Callers try them in turn, so a name whose
// first address has nobody listening still connects.
#pragma once

#include <uv.h>

#include <coroutine>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"

namespace tether::core {

// `host` without brackets. An address literal comes back as itself.
// Blocking: for threads off the loop and for the CLI. Errors: "resolve"
// (the message names the host and the resolver's reason).
Result<std::vector<std::string>> resolve_host(const std::string& host);

// The same on the loop, with libuv's resolver (its thread pool).
class ResolveAwaiter {
 public:
  ResolveAwaiter(Loop& loop, std::string host, CancellationToken token);
  ResolveAwaiter(const ResolveAwaiter&) = delete;
  ResolveAwaiter& operator=(const ResolveAwaiter&) = delete;
  ~ResolveAwaiter();

  bool await_ready() const noexcept { return result_.has_value() || token_.cancelled(); }
  void await_suspend(std::coroutine_handle<> awaiting);
  Result<std::vector<std::string>> await_resume();

 private:
  struct Request;
  static void on_resolved(uv_getaddrinfo_t* request, int status, addrinfo* result);

  Loop& loop_;
  std::string host_;
  CancellationToken token_;
  std::optional<Result<std::vector<std::string>>> result_;
  Request* request_ = nullptr;  // freed by libuv's callback
  std::coroutine_handle<> awaiting_;
  std::optional<CancellationRegistration> registration_;
};

inline ResolveAwaiter resolve(Loop& loop, std::string host,
                              CancellationToken token = CancellationToken()) {
  return ResolveAwaiter(loop, std::move(host), std::move(token));
}

}  // namespace tether::core
