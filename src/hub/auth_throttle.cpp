#include "hub/auth_throttle.hpp"

#include "core/log.hpp"
#include "protocol/api_error.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

namespace tether::hub {

AuthThrottle::AuthThrottle(AuthThrottleLimits limits, std::vector<std::string> trusted_proxies)
    : limits_(limits) {
  for (const auto& proxy : trusted_proxies) {
    const std::string canonical = canonical_address(proxy);
    if (!canonical.empty()) trusted_proxies_.push_back(canonical);
  }
}

std::string AuthThrottle::canonical_address(const std::string& literal) {
  char text[INET6_ADDRSTRLEN] = {0};
  in_addr v4{};
  if (::inet_pton(AF_INET, literal.c_str(), &v4) == 1) {
    return ::inet_ntop(AF_INET, &v4, text, sizeof text) ? text : "";
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, literal.c_str(), &v6) != 1) return {};
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(&v4, &v6.s6_addr[12], sizeof v4);
    return ::inet_ntop(AF_INET, &v4, text, sizeof text) ? text : "";
  }
  return ::inet_ntop(AF_INET6, &v6, text, sizeof text) ? text : "";
}

std::string AuthThrottle::source_of(const core::HttpRequest& request) const {
  if (request.forwarded_for.empty() || trusted_proxies_.empty() ||
      std::find(trusted_proxies_.begin(), trusted_proxies_.end(),
                canonical_address(request.peer_address)) == trusted_proxies_.end()) {
    return request.peer_address;
  }
  std::string_view forwarded = request.forwarded_for;
  const size_t comma = forwarded.rfind(',');
  const std::string_view last =
      core::trim_ows(comma == std::string_view::npos ? forwarded : forwarded.substr(comma + 1));
  const std::string address = canonical_address(std::string(last));
  return address.empty() ? request.peer_address : address;
}

std::optional<core::HttpResponse> AuthThrottle::refusal(const core::HttpRequest& request) {
  const std::string source = source_of(request);
  const int64_t wait_s = blocked_for_s(source, steady_now_ms());
  if (wait_s == 0) return std::nullopt;
  ++refused_;
  auto response = core::json_response(
      429, protocol::api_error_body("too_many_auth_failures",
                                    "too many failed authentications from " + source +
                                        "; retry in " + std::to_string(wait_s) + " s",
                                    true));
  response.headers.emplace_back("retry-after", std::to_string(wait_s));
  return response;
}

void AuthThrottle::failed(const core::HttpRequest& request) {
  const std::string source = source_of(request);
  if (record_failure(source, steady_now_ms())) {
    ++blocked_total_;
    char per_second_text[32];
    std::snprintf(per_second_text, sizeof per_second_text, "%g", limits_.per_second);
    core::log_warning("auth", std::to_string(static_cast<int>(limits_.burst)) +
                                  " failed authentications from " + source +
                                  "; refusing it (429) until it slows to " +
                                  std::string(per_second_text) + " per second");
  }
}

double AuthThrottle::refill(Bucket& bucket, int64_t now_ms) const {
  if (now_ms > bucket.updated_ms) {
    const double earned =
        static_cast<double>(now_ms - bucket.updated_ms) / 1000.0 * limits_.per_second;
    bucket.tokens = std::min(limits_.burst, bucket.tokens + earned);
    bucket.updated_ms = now_ms;
  }
  return bucket.tokens;
}

int64_t AuthThrottle::blocked_for_s(const std::string& source, int64_t now_ms) {
  auto it = buckets_.find(source);
  if (it == buckets_.end()) return 0;
  const double tokens = refill(it->second, now_ms);
  if (tokens >= 1) return 0;
  return static_cast<int64_t>(std::ceil((1 - tokens) / limits_.per_second));
}

bool AuthThrottle::record_failure(const std::string& source, int64_t now_ms) {
  if (buckets_.size() >= limits_.max_sources && !buckets_.count(source)) {
    forget_full_buckets(now_ms);
  }
  auto [it, added] = buckets_.try_emplace(source, Bucket{limits_.burst, now_ms});
  const double tokens = refill(it->second, now_ms);
  if (tokens < 1) return false;
  it->second.tokens = tokens - 1;
  return it->second.tokens < 1;
}

void AuthThrottle::forget_full_buckets(int64_t now_ms) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (refill(it->second, now_ms) >= limits_.burst) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
  if (buckets_.size() < limits_.max_sources) return;
  // Still full of sources mid-attack: forget the tenth closest to full, so
  // this pass runs once per many new sources, not once per failure.
  std::vector<std::pair<double, std::string>> by_tokens;
  by_tokens.reserve(buckets_.size());
  for (const auto& [source, bucket] : buckets_)
    by_tokens.emplace_back(bucket.tokens, source);
  const size_t forget = std::max<size_t>(1, by_tokens.size() / 10);
  std::nth_element(by_tokens.begin(), by_tokens.begin() + static_cast<ptrdiff_t>(forget - 1),
                   by_tokens.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; i < forget; ++i)
    buckets_.erase(by_tokens[i].second);
}

int64_t AuthThrottle::steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace tether::hub
