// BrowserSessions: the web UI's sign-ins (docs/protocol.md 11.6), kept in
// hub.db's `browser_sessions` table so they outlive a hub restart.
//
// An operator signs in once with an operator token; the browser then holds
// only a session id in an HttpOnly cookie, and the page a CSRF token it
// sends back in X-CSRF-Token on every change. A session acts with its
// operator token's principal, looked up again on every request, so revoking
// the token ends its sessions at once.
//
// Invariants:
//   - ids and CSRF tokens are 256 random bits (hex); the table holds the
//     SHA-256 of the id and of the operator token, never either; CSRF
//     tokens are compared in constant time;
//   - a session ends kMaxAgeMs after sign-in, kIdleMs after it was last
//     used (last use is written at most once per kTouchMs), at sign-out, or
//     when its token no longer resolves;
//   - at most kMaxSessions live at once: a sign-in past that ends the
//     session used longest ago; ended sessions are deleted at the next
//     sign-in (the table stays bounded whatever clients do).
// Every call reads or writes hub.db: call inside the store's error boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/sql_store.hpp"
#include "hub/hub_store.hpp"
#include "hub/operator_roles.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

struct BrowserSession {
  std::string id;          // the cookie's value; only in sign_in's answer
  std::string csrf_token;  // sent back by the page in X-CSRF-Token
  Principal principal;
  int64_t expires_at_ms = 0;  // the absolute end (kMaxAgeMs after sign-in)
};

class BrowserSessions {
 public:
  static constexpr int64_t kMaxAgeMs = 12LL * 3600 * 1000;
  static constexpr int64_t kIdleMs = 3600LL * 1000;
  static constexpr int64_t kTouchMs = 60'000;
  static constexpr int64_t kMaxSessions = 10'000;
  static constexpr const char* kCookieName = "tether_session";

  // `now_ms`: milliseconds since the epoch (tests pass their own clock).
  BrowserSessions(core::SqlStore& store, TokenStore& tokens, std::function<int64_t()> now_ms = {});

  // A new session for the operator token `token`; nothing if it is not a
  // live operator token (an agent's or a registration token is refused too).
  std::optional<BrowserSession> sign_in(const std::string& token);
  // The live session a Cookie header names (RFC 6265 5.4: "a=b; c=d"), its
  // principal looked up afresh (id left empty); nothing if there is none or
  // it ended. Counts as a use.
  std::optional<BrowserSession> find(const std::string& cookie_header);
  // Why sign_in refused `token`, for the answer: "operator token 'ci' was
  // revoked at ...", or that it is no operator token at all.
  std::string refusal(const std::string& token);
  // Ends the session the Cookie header names, if any.
  void sign_out(const std::string& cookie_header);
  // Whether `csrf_token` is the session's (constant time).
  static bool csrf_matches(const BrowserSession& session, const std::string& csrf_token);

  // Set-Cookie values (RFC 6265 4.1): the session's, and one that clears it.
  static std::string cookie_for(const BrowserSession& session, bool secure);
  static std::string clearing_cookie(bool secure);

  // Sessions in the table, ended ones not yet deleted included.
  int64_t count();

 private:
  // The session id in a Cookie header, or empty.
  static std::string session_id_of(const std::string& cookie_header);
  // Deletes ended sessions, and the least recently used past kMaxSessions - 1.
  void make_room();
  int64_t now() const { return now_ms_(); }

  core::SqlStore& store_;
  TokenStore& tokens_;
  std::function<int64_t()> now_ms_;
};

}  // namespace tether::hub
