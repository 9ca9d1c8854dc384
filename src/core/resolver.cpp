#include "core/resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

namespace tether::core {

namespace {

bool is_address_literal(const std::string& host) {
  in6_addr v6{};
  in_addr v4{};
  return ::inet_pton(AF_INET, host.c_str(), &v4) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

addrinfo stream_hints() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: a name listed with ::1 is tried there too (and
  // skipped if that fails), as a stock Debian's "localhost" is.
  return hints;
}

std::vector<std::string> addresses_of(const addrinfo* list) {
  std::vector<std::string> addresses;
  for (const addrinfo* entry = list; entry; entry = entry->ai_next) {
    char text[INET6_ADDRSTRLEN] = {0};
    const void* raw = entry->ai_family == AF_INET6
                          ? static_cast<const void*>(
                                &reinterpret_cast<const sockaddr_in6*>(entry->ai_addr)->sin6_addr)
                          : static_cast<const void*>(
                                &reinterpret_cast<const sockaddr_in*>(entry->ai_addr)->sin_addr);
    if (!::inet_ntop(entry->ai_family, raw, text, sizeof text)) continue;
    if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  return addresses;
}

}  // namespace

bool is_loopback_address(const std::string& address) {
  in_addr v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, address.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

Result<std::vector<std::string>> permitted_addresses(const std::string& url_host, bool tls,
                                                     PlainTextPolicy policy,
                                                     std::vector<std::string> addresses) {
  if (tls || policy == PlainTextPolicy::kAnywhere) return addresses;
  std::vector<std::string> loopback;
  std::string others;
  for (auto& address : addresses) {
    if (is_loopback_address(address)) {
      loopback.push_back(std::move(address));
    } else {
      others += (others.empty() ? "" : ", ") + address;
    }
  }
  if (!loopback.empty()) return loopback;
  return make_error(Errc::kInvalid, "plain_not_loopback",
                    "plain http goes only to a loopback address, and '" + url_host +
                        "' resolves to " + others +
                        ": the token would cross the network in the clear. Use https");
}

Result<void> check_plain_text_allowed(const std::string& host, bool tls, PlainTextPolicy policy) {
  if (tls || policy == PlainTextPolicy::kAnywhere) return {};
  auto addresses = resolve_host(host);
  if (!addresses) {
    return make_error(Errc::kInvalid, "plain_not_loopback",
                      "plain http goes only to a loopback address, and " +
                          addresses.error().message + ". Use https, or a loopback address");
  }
  TETHER_TRY(permitted, permitted_addresses(host, tls, policy, std::move(*addresses)));
  return {};
}

Result<std::vector<std::string>> resolve_host(const std::string& host) {
  if (is_address_literal(host)) return std::vector<std::string>{host};
  const addrinfo hints = stream_hints();
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0)
    return make_error(Errc::kUnreachable, "resolve",
                      "cannot resolve '" + host + "': " + gai_strerror(rc));
  auto addresses = addresses_of(list);
  ::freeaddrinfo(list);
  if (addresses.empty())
    return make_error(Errc::kUnreachable, "resolve", "'" + host + "' has no address");
  return addresses;
}

struct ResolveAwaiter::Request {
  uv_getaddrinfo_t request{};
  ResolveAwaiter* owner = nullptr;  // null once the owner is gone
};

ResolveAwaiter::ResolveAwaiter(Loop& loop, std::string host, CancellationToken token)
    : loop_(loop), host_(std::move(host)), token_(std::move(token)) {
  if (is_address_literal(host_)) result_ = std::vector<std::string>{host_};
}

ResolveAwaiter::~ResolveAwaiter() {
  if (request_) request_->owner = nullptr;  // libuv frees it in on_resolved
}

void ResolveAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  awaiting_ = awaiting;
  request_ = new Request;
  request_->owner = this;
  request_->request.data = request_;
  const addrinfo hints = stream_hints();
  const int rc = uv_getaddrinfo(loop_.get(), &request_->request, &ResolveAwaiter::on_resolved,
                                host_.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete request_;
    request_ = nullptr;
    result_ = make_error(Errc::kUnreachable, "resolve",
                         "cannot resolve '" + host_ + "': " + uv_strerror(rc));
    loop_.defer([awaiting] { awaiting.resume(); });
    return;
  }
  registration_.emplace(token_, [this] {
    // The lookup may already run on a libuv thread: it then completes
    // into a request whose owner has left.
    if (request_) {
      request_->owner = nullptr;
      uv_cancel(reinterpret_cast<uv_req_t*>(&request_->request));
      request_ = nullptr;
    }
    if (auto awaiting = std::exchange(awaiting_, {}))
      loop_.defer([awaiting] { awaiting.resume(); });
  });
}

void ResolveAwaiter::on_resolved(uv_getaddrinfo_t* request, int status, addrinfo* result) {
  std::unique_ptr<Request> owned(static_cast<Request*>(request->data));
  ResolveAwaiter* self = owned->owner;
  if (!self) {
    uv_freeaddrinfo(result);
    return;
  }
  self->request_ = nullptr;
  if (status != 0) {
    self->result_ = make_error(Errc::kUnreachable, "resolve",
                               "cannot resolve '" + self->host_ + "': " + uv_strerror(status));
  } else {
    auto addresses = addresses_of(result);
    if (addresses.empty()) {
      self->result_ =
          make_error(Errc::kUnreachable, "resolve", "'" + self->host_ + "' has no address");
    } else {
      self->result_ = std::move(addresses);
    }
  }
  uv_freeaddrinfo(result);
  if (auto awaiting = std::exchange(self->awaiting_, {})) awaiting.resume();
}

Result<std::vector<std::string>> ResolveAwaiter::await_resume() {
  registration_.reset();
  if (result_) return std::move(*result_);
  return cancelled_error();
}

}  // namespace tether::core
