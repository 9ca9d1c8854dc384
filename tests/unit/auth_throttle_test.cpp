#include <catch2/catch.hpp>
#include <random>

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

TEST_CASE("AuthThrottle: X-Forwarded-For counts only from a listed proxy, last entry", "[hub]") {
  tether::core::HttpRequest request;
  request.peer_address = "127.0.0.1";
  request.forwarded_for = "203.0.113.7";
  // No proxy listed (the default): the header is nobody's word, not even
  // from loopback.
  CHECK(AuthThrottle().source_of(request) == "127.0.0.1");

  AuthThrottle throttle(AuthThrottleLimits{}, {"127.0.0.1", "2001:db8::5", "not an address"});
  request.peer_address = "192.0.2.1";
  CHECK(throttle.source_of(request) == "192.0.2.1");  // not a listed proxy: ignored
  request.peer_address = "127.0.0.2";
  CHECK(throttle.source_of(request) == "127.0.0.2");  // loopback, but not listed
  request.peer_address = "127.0.0.1";
  CHECK(throttle.source_of(request) == "203.0.113.7");
  request.forwarded_for = "198.51.100.1, 203.0.113.7 ";
  CHECK(throttle.source_of(request) == "203.0.113.7");
  request.forwarded_for = "2001:db8::1";
  CHECK(throttle.source_of(request) == "2001:db8::1");
  request.forwarded_for = "unknown";
  CHECK(throttle.source_of(request) == "127.0.0.1");
  request.peer_address = "::ffff:127.0.0.1";  // the same proxy, written as IPv6
  request.forwarded_for = "203.0.113.9";
  CHECK(throttle.source_of(request) == "203.0.113.9");
  request.peer_address = "2001:DB8:0::5";
  CHECK(throttle.source_of(request) == "203.0.113.9");
  CHECK(AuthThrottle::canonical_address("::ffff:10.1.2.3") == "10.1.2.3");
  CHECK(AuthThrottle::canonical_address("localhost").empty());
}

// Whatever a client writes into X-Forwarded-For, the source is the peer or
// an address the listed proxy appended: never text of the client's making.
TEST_CASE("AuthThrottle: any X-Forwarded-For yields the peer or an address", "[hub]") {
  AuthThrottle throttle(AuthThrottleLimits{}, {"127.0.0.1"});
  std::mt19937 random(1130);
  static constexpr char kAlphabet[] = "0123456789abcdefABCDEF.:, \t;=\"[]\r\n\0\xff";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
  for (int i = 0; i < 100000; ++i) {
    tether::core::HttpRequest request;
    request.peer_address = i % 2 ? "127.0.0.1" : "192.0.2.7";
    const size_t length = random() % 60;
    for (size_t k = 0; k < length; ++k)
      request.forwarded_for += alphabet[random() % alphabet.size()];
    const std::string source = throttle.source_of(request);
    INFO(request.forwarded_for);
    if (source != request.peer_address) {
      REQUIRE(request.peer_address == "127.0.0.1");  // only through the listed proxy
      REQUIRE(AuthThrottle::canonical_address(source) == source);
    }
  }
}
