// AuthThrottle: failed authentications are rate-limited per source.
//
// Each source (an IP address) has a budget of failures that refills at a
// steady rate: `burst` failures at once, then `per_second`. A source that
// has spent its budget gets 429 with Retry-After on every authenticated
// route, valid token or not, until the budget refills: a guess must not be
// told whether it was right. A misconfigured agent that backs off (ours
// retries at most every few seconds once its backoff has grown) stays far
// below the refill rate, so agents sharing its address are not locked out.
//
// Behind a TLS proxy on the same host every peer is 127.0.0.1. Only then is
// X-Forwarded-For believed, and only its last entry: the one our proxy
// appended ($proxy_add_x_forwarded_for). Entries before it came from the
// client and could be anything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/http_types.hpp"

namespace tether::hub {

struct AuthThrottleLimits {
  double burst = 30;
  double per_second = 1;
  // Sources remembered at most; beyond it the fullest buckets (the ones that
  // forget nothing by being dropped) are forgotten first.
  size_t max_sources = 10000;
};

class AuthThrottle {
 public:
  explicit AuthThrottle(AuthThrottleLimits limits = {}) : limits_(limits) {}

  // For a route that authenticates: the 429 answer when the request's source
  // is blocked (counted in refused()), or nothing.
  std::optional<core::HttpResponse> refusal(const core::HttpRequest& request);
  // The request failed to authenticate (401): spends its source's budget,
  // and logs once when that empties it.
  void failed(const core::HttpRequest& request);

  // The address a request comes from (see above).
  static std::string source_of(const core::HttpRequest& request);

  // Whole seconds until `source` may try again; 0 when it may try now.
  int64_t blocked_for_s(const std::string& source, int64_t now_ms);
  // Spends one failure of `source`'s budget. True when this failure emptied
  // it (the caller logs that once, instead of every refused request).
  bool record_failure(const std::string& source, int64_t now_ms);

  static int64_t steady_now_ms();

  uint64_t refused() const { return refused_; }
  uint64_t blocked_sources_total() const { return blocked_total_; }

 private:
  struct Bucket {
    double tokens;
    int64_t updated_ms;
  };
  double refill(Bucket& bucket, int64_t now_ms) const;
  void forget_full_buckets(int64_t now_ms);

  AuthThrottleLimits limits_;
  std::unordered_map<std::string, Bucket> buckets_;
  uint64_t refused_ = 0;
  uint64_t blocked_total_ = 0;
};

}  // namespace tether::hub
