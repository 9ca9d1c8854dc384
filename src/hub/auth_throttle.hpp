// AuthThrottle: failed authentications are rate-limited per source.
//
// Each source (an IP address) has a budget of failures that refills at a
// steady rate: `burst` failures at once, then `per_second`. A source that
// has spent its budget gets 429 with Retry-After instead of 401 for each
// further token that does not verify, until the budget refills. A token
// that verifies is never throttled: one bad client behind a NAT or a proxy
// must not lock out the agents that share its address. (Tokens are 256-bit
// random values: the throttle keeps guessing noisy and slow, it is not
// what makes a guess fail.)
//
// The source is the TCP peer, unless the peer is one of the proxies the
// operator listed (`--trusted-proxy`, none by default): then it is the last
// entry of X-Forwarded-For, the one that proxy appended
// ($proxy_add_x_forwarded_for). Entries before it came from the client and
// could be anything; from any other peer the header is ignored, so a client
// can neither dodge its budget nor spend another address's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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
  // `trusted_proxies`: address literals (IPv4 or IPv6) whose
  // X-Forwarded-For is believed.
  explicit AuthThrottle(AuthThrottleLimits limits = {},
                        std::vector<std::string> trusted_proxies = {});

  // For a request whose token did not verify: the 429 answer when its
  // source has spent its budget (counted in refused()), or nothing.
  std::optional<core::HttpResponse> refusal(const core::HttpRequest& request);
  // The request failed to authenticate (401): spends its source's budget,
  // and logs once when that empties it.
  void failed(const core::HttpRequest& request);

  // The address a request comes from (see above).
  std::string source_of(const core::HttpRequest& request) const;
  // An address literal in the form source_of() compares: as inet_ntop
  // writes it, IPv4-mapped IPv6 as plain IPv4; empty if it is not one.
  static std::string canonical_address(const std::string& literal);

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
  std::vector<std::string> trusted_proxies_;  // canonical
  std::unordered_map<std::string, Bucket> buckets_;
  uint64_t refused_ = 0;
  uint64_t blocked_total_ = 0;
};

}  // namespace tether::hub
