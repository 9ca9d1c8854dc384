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

// True for an address literal in 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104
// (RFC 1122 3.2.1.3, RFC 4291 2.5.3 and 2.5.5.2). A name is never loopback by
// itself: "127.0.0.1.example.invalid" resolves wherever its owner likes.
bool is_loopback_address(const std::string& address);

// Where plain (unencrypted) connections may go. A token sent in the clear
// stays on this host only if every address connected to is loopback, so
// the decision is made on the resolved addresses, at each connect.
enum class PlainTextPolicy {
  kLoopbackOnly,  // plain http/ws only to loopback addresses (the default)
  kAnywhere,      // the operator allowed it (agent.conf `insecure = true`)
};

// The addresses a connection to `url_host` may use: all of them for TLS or
// kAnywhere; otherwise the loopback ones, or the error "plain_not_loopback"
// naming the host and what it resolved to.
Result<std::vector<std::string>> permitted_addresses(const std::string& url_host, bool tls,
                                                     PlainTextPolicy policy,
                                                     std::vector<std::string> addresses);

// resolve_host, then permitted_addresses: the check a configuration is
// given at start, so that a refusal shows before the first connect.
// Blocking.
Result<void> check_plain_text_allowed(const std::string& host, bool tls, PlainTextPolicy policy);

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
