#include "hub/browser_sessions.hpp"

#include <string_view>

#include "core/http_types.hpp"
#include "core/wall_clock.hpp"

namespace tether::hub {

BrowserSessions::BrowserSessions(core::SqlStore& store, TokenStore& tokens,
                                 std::function<int64_t()> now_ms)
    : store_(store), tokens_(tokens), now_ms_(now_ms ? std::move(now_ms) : wall_clock_ms) {}

std::optional<BrowserSession> BrowserSessions::sign_in(const std::string& token) {
  if (token.rfind("tto_", 0) != 0) return std::nullopt;
  const std::string token_sha256 = token_digest(token);
  auto principal = tokens_.operator_principal_of_digest(token_sha256);
  if (!principal) return std::nullopt;
  make_room();
  BrowserSession session;
  session.id = random_hex(32);
  session.csrf_token = random_hex(32);
  session.principal = std::move(*principal);
  session.expires_at_ms = now() + kMaxAgeMs;
  store_.execute(
      "INSERT INTO browser_sessions (id_sha256, operator_token_sha256, csrf_token, created_at, "
      "expires_at_ms, last_used_ms) VALUES (?, ?, ?, ?, ?, ?)",
      token_digest(session.id), token_sha256, session.csrf_token, core::utc_now(),
      session.expires_at_ms, now());
  return session;
}

std::optional<BrowserSession> BrowserSessions::find(const std::string& cookie_header) {
  const std::string id = session_id_of(cookie_header);
  if (id.empty()) return std::nullopt;
  const std::string id_sha256 = token_digest(id);
  std::string token_sha256;
  BrowserSession session;
  int64_t last_used_ms = 0;
  {
    auto query = store_.query(
        "SELECT operator_token_sha256, csrf_token, expires_at_ms, last_used_ms FROM "
        "browser_sessions WHERE id_sha256 = ?");
    query.bind_all(id_sha256);
    if (!query.executeStep()) return std::nullopt;
    token_sha256 = query.getColumn(0).getString();
    session.csrf_token = query.getColumn(1).getString();
    session.expires_at_ms = query.getColumn(2).getInt64();
    last_used_ms = query.getColumn(3).getInt64();
  }
  const int64_t at = now();
  auto principal = tokens_.operator_principal_of_digest(token_sha256);
  if (at >= session.expires_at_ms || at - last_used_ms >= kIdleMs || !principal) {
    store_.execute("DELETE FROM browser_sessions WHERE id_sha256 = ?", id_sha256);
    return std::nullopt;
  }
  if (at - last_used_ms >= kTouchMs) {  // not a write per request
    store_.execute("UPDATE browser_sessions SET last_used_ms = ? WHERE id_sha256 = ?", at,
                   id_sha256);
  }
  session.principal = std::move(*principal);
  return session;
}

std::string BrowserSessions::refusal(const std::string& token) {
  if (token.rfind("tto_", 0) == 0) {
    if (auto why = tokens_.why_unverified("Bearer " + token)) return *why;
  }
  return "not an operator token (an agent's or a registration token cannot sign in)";
}

void BrowserSessions::sign_out(const std::string& cookie_header) {
  const std::string id = session_id_of(cookie_header);
  if (id.empty()) return;
  store_.execute("DELETE FROM browser_sessions WHERE id_sha256 = ?", token_digest(id));
}

int64_t BrowserSessions::count() {
  auto query = store_.query("SELECT count(*) FROM browser_sessions");
  return query.executeStep() ? query.getColumn(0).getInt64() : 0;
}

void BrowserSessions::make_room() {
  const int64_t at = now();
  store_.execute("DELETE FROM browser_sessions WHERE expires_at_ms <= ? OR last_used_ms <= ?", at,
                 at - kIdleMs);
  store_.execute(
      "DELETE FROM browser_sessions WHERE id_sha256 IN (SELECT id_sha256 FROM browser_sessions "
      "ORDER BY last_used_ms DESC LIMIT 9223372036854775807 OFFSET ?)",
      kMaxSessions - 1);
}

bool BrowserSessions::csrf_matches(const BrowserSession& session, const std::string& csrf_token) {
  return digests_equal(session.csrf_token, csrf_token);
}

std::string BrowserSessions::cookie_for(const BrowserSession& session, bool secure) {
  // No Max-Age: the cookie goes with the browser session; the hub ends it
  // on its own clock anyway.
  return std::string(kCookieName) + "=" + session.id + "; Path=/; HttpOnly; SameSite=Strict" +
         (secure ? "; Secure" : "");
}

std::string BrowserSessions::clearing_cookie(bool secure) {
  return std::string(kCookieName) + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" +
         (secure ? "; Secure" : "");
}

std::string BrowserSessions::session_id_of(const std::string& cookie_header) {
  std::string_view rest(cookie_header);
  while (!rest.empty()) {
    const size_t end = rest.find(';');
    std::string_view pair = core::trim_ows(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    const size_t equals = pair.find('=');
    if (equals == std::string_view::npos) continue;
    if (core::trim_ows(pair.substr(0, equals)) != kCookieName) continue;
    std::string_view value = core::trim_ows(pair.substr(equals + 1));
    // Ours are 64 hex digits; anything else is not a session of this hub.
    if (value.size() != 64) return {};
    for (char c : value)
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
    return std::string(value);
  }
  return {};
}

}  // namespace tether::hub
