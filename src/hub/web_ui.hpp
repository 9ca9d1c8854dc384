// WebUi: the hub's web UI on a port of its own (docs/ui.md).
//
//   GET    /, /ui/FILE       the page and its files (built into the binary)
//   POST   /ui/session       sign in with an operator token {"token"}
//   GET    /ui/session       who is signed in, and the CSRF token
//   DELETE /ui/session       sign out
//   *      /api/v1/...       the operator API (docs/protocol.md 11), as the
//                            session's operator: HubApi answers, its gate
//                            decides, its audit records
//
// The API here takes the session cookie instead of a bearer token; every
// method but GET must also carry the session's X-CSRF-Token (403 otherwise),
// so another site's form or script cannot act with the cookie (which is
// SameSite=Strict besides). Nothing else is served: no WebSocket, no agent
// route answers a session.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/web_server.hpp"
#include "hub/auth_throttle.hpp"
#include "hub/browser_sessions.hpp"
#include "hub/hub_api.hpp"

namespace tether::hub {

struct WebUiOptions {
  std::string bind_address;  // resolved by Hub::start, as for --listen
  int port = 0;
  std::string tls_certificate_file;  // both set: HTTPS, and cookies are Secure
  std::string tls_private_key_file;
  // Serve "/" and /ui/NAME.js|css|html from this directory when it has the
  // file, before the copies in the binary: for working on the UI without
  // rebuilding.
  std::string dev_assets_dir;
  size_t max_body_bytes = 1 << 20;
  unsigned int request_timeout_s = 10;
};

class WebUi {
 public:
  // Binds and serves. Errors name the address and the cause.
  static Result<std::unique_ptr<WebUi>> start(core::Loop& loop, WebUiOptions options,
                                              core::SqlStore& store, HubApi& api,
                                              BrowserSessions& sessions, AuthThrottle& throttle);
  WebUi(const WebUi&) = delete;
  WebUi& operator=(const WebUi&) = delete;

  int port() const { return server_->port(); }
  const std::string& host() const { return options_.bind_address; }
  bool tls() const { return !options_.tls_certificate_file.empty(); }
  // Cookies get Secure when this port serves TLS or a TLS proxy in front says
  // so (X-Forwarded-Proto: https; a client that sends it itself only loses
  // its cookie on plain HTTP).
  bool secure_cookies(const core::HttpRequest& request) const {
    return tls() || request.forwarded_proto == "https";
  }

 private:
  WebUi(WebUiOptions options, core::SqlStore& store, HubApi& api, BrowserSessions& sessions,
        AuthThrottle& throttle);
  // The live session of the request's cookie, read inside the store's error
  // boundary; `unavailable` is set when hub.db could not be read.
  std::optional<BrowserSession> session_of(const core::HttpRequest& request, bool& unavailable);
  // Before a body is read: API requests need a live session (401) and,
  // unless GET, its CSRF token (403); a sign-in's body is small.
  std::optional<core::HttpResponse> check_before_body(const core::HttpRequest& request);
  void handle(const std::shared_ptr<core::HttpExchange>& exchange);
  void session_route(const std::shared_ptr<core::HttpExchange>& exchange);
  void session_work(const std::shared_ptr<core::HttpExchange>& exchange);
  void sign_in(const std::shared_ptr<core::HttpExchange>& exchange);
  void serve_asset(const std::shared_ptr<core::HttpExchange>& exchange);
  // With dev_assets_dir: the file for `path` from there, if it has one.
  bool read_dev_asset(const std::string& path, core::HttpResponse& response) const;
  void forward_to_api(const std::shared_ptr<core::HttpExchange>& exchange);
  // {name, role, csrf_token, expires_at}
  static std::string session_body(const BrowserSession& session);

  WebUiOptions options_;
  core::SqlStore& store_;
  HubApi& api_;
  BrowserSessions& sessions_;
  AuthThrottle& throttle_;
  std::unique_ptr<core::WebServer> server_;
};

}  // namespace tether::hub
