#include <catch2/catch.hpp>

#include "hub/auth_throttle.hpp"

using tether::hub::AuthThrottle;
using tether::hub::AuthThrottleLimits;

TEST_CASE("AuthThrottle: a burst, then one failure per refill interval", "[hub]") {
  AuthThrottle throttle(AuthThrottleLimits{3, 0.5, 100});
  CHECK(throttle.blocked_for_s("a", 0) == 0);
  CHECK_FALSE(throttle.record_failure("a", 0));
  CHECK_FALSE(throttle.record_failure("a", 0));
  CHECK(throttle.record_failure("a", 0));      // the one that empties the budget
  CHECK(throttle.blocked_for_s("a", 0) == 2);  // 0.5 per second: 2 s for one more
  CHECK(throttle.blocked_for_s("b", 0) == 0);
  CHECK(throttle.blocked_for_s("a", 1000) == 1);
  CHECK(throttle.blocked_for_s("a", 2000) == 0);
  CHECK(throttle.record_failure("a", 2000));  // spent again at once
  CHECK(throttle.blocked_for_s("a", 2000) == 2);
  // A full refill forgives everything.
  CHECK(throttle.blocked_for_s("a", 60000) == 0);
  CHECK_FALSE(throttle.record_failure("a", 60000));
}

TEST_CASE("AuthThrottle: memory stays bounded under many sources", "[hub]") {
  AuthThrottle throttle(AuthThrottleLimits{2, 1, 50});
  for (int i = 0; i < 1000; ++i) {
    const std::string source = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    throttle.record_failure(source, 0);
    throttle.record_failure(source, 0);
    CHECK(throttle.blocked_for_s(source, 0) == 1);  // the newest is always remembered
  }
}

TEST_CASE("AuthThrottle: X-Forwarded-For counts only from a loopback peer, last entry", "[hub]") {
  tether::core::HttpRequest request;
  request.peer_address = "192.0.2.1";
  request.forwarded_for = "203.0.113.7";
  CHECK(AuthThrottle::source_of(request) == "192.0.2.1");  // not our proxy: ignored
  request.peer_address = "127.0.0.1";
  CHECK(AuthThrottle::source_of(request) == "203.0.113.7");
  request.forwarded_for = "198.51.100.1, 203.0.113.7 ";
  CHECK(AuthThrottle::source_of(request) == "203.0.113.7");
  request.forwarded_for = "2001:db8::1";
  CHECK(AuthThrottle::source_of(request) == "2001:db8::1");
  request.forwarded_for = "unknown";
  CHECK(AuthThrottle::source_of(request) == "127.0.0.1");
  request.peer_address = "::ffff:127.0.0.1";
  request.forwarded_for = "203.0.113.9";
  CHECK(AuthThrottle::source_of(request) == "203.0.113.9");
}
