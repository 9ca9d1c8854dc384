#include "hub/web_ui.hpp"

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "hub/http_replies.hpp"
#include "hub/ui_assets.hpp"
#include "protocol/api_error.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::hub {

using core::HttpExchange;
using core::HttpResponse;
using core::json_response;

namespace {

// Scripts only from the hub itself; styles may be inline because xterm.js
// writes its colours into a <style> element it creates.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'";

void add_page_headers(HttpResponse& response) {
  response.headers.emplace_back("content-security-policy", kContentSecurityPolicy);
  response.headers.emplace_back("x-content-type-options", "nosniff");
  response.headers.emplace_back("referrer-policy", "no-referrer");
  response.headers.emplace_back("x-frame-options", "DENY");
  response.headers.emplace_back("cache-control", "no-cache");
}

bool starts_with(const std::string& text, std::string_view prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool is_api_path(const std::string& path) {
  return path == "/api/v1" || starts_with(path, "/api/v1/");
}

}  // namespace

WebUi::WebUi(WebUiOptions options, core::SqlStore& store, HubApi& api, BrowserSessions& sessions,
             AuthThrottle& throttle)
    : options_(std::move(options)),
      store_(store),
      api_(api),
      sessions_(sessions),
      throttle_(throttle) {}

Result<std::unique_ptr<WebUi>> WebUi::start(core::Loop& loop, WebUiOptions options,
                                            core::SqlStore& store, HubApi& api,
                                            BrowserSessions& sessions, AuthThrottle& throttle) {
  std::unique_ptr<WebUi> ui(new WebUi(std::move(options), store, api, sessions, throttle));
  core::WebServerOptions server_options;
  server_options.bind_address = ui->options_.bind_address;
  server_options.port = ui->options_.port;
  server_options.tls_certificate_file = ui->options_.tls_certificate_file;
  server_options.tls_private_key_file = ui->options_.tls_private_key_file;
  server_options.max_body_bytes = ui->options_.max_body_bytes;
  server_options.request_timeout_s = ui->options_.request_timeout_s;
  WebUi* raw = ui.get();
  core::WebServer::Handlers handlers;
  handlers.on_request = [raw](std::shared_ptr<HttpExchange> exchange) { raw->handle(exchange); };
  handlers.on_headers = [raw](const core::HttpRequest& request) {
    return raw->check_before_body(request);
  };
  handlers.on_upgrade = [](const core::HttpRequest&) {
    return core::UpgradeDecision{
        404, protocol::api_error_body("not_found", "the web UI serves no WebSocket", false)};
  };
  handlers.on_websocket = [](std::shared_ptr<core::WebSocketConnection>) {};
  TETHER_TRY(server, core::WebServer::start(loop, server_options, std::move(handlers)));
  ui->server_ = std::move(*server);
  return ui;
}

std::optional<BrowserSession> WebUi::session_of(const core::HttpRequest& request,
                                                bool& unavailable) {
  std::optional<BrowserSession> session;
  unavailable = store_.guarded("web UI session", [&] {
    session = sessions_.find(request.cookie);
  }) != core::SqlStore::Outcome::kDone;
  return session;
}

std::optional<HttpResponse> WebUi::check_before_body(const core::HttpRequest& request) {
  if (!is_api_path(request.path)) return std::nullopt;
  bool unavailable = false;
  auto session = session_of(request, unavailable);
  if (unavailable) return std::nullopt;  // the body is read; the route answers
  if (!session) {
    if (auto refused = throttle_.refusal(request)) return refused;
    return json_response(401, protocol::api_error_body(
                                  "unauthorized", "not signed in, or the session ended", false));
  }
  if (request.method != "GET" && !BrowserSessions::csrf_matches(*session, request.csrf_token)) {
    return json_response(
        403, protocol::api_error_body("forbidden",
                                      "X-CSRF-Token: missing or not this session's (a change "
                                      "needs the token GET /ui/session gives)",
                                      false));
  }
  return std::nullopt;
}

void WebUi::handle(const std::shared_ptr<HttpExchange>& exchange) {
  const std::string& path = exchange->request().path;
  if (is_api_path(path)) {
    forward_to_api(exchange);
  } else if (path == "/ui/session") {
    session_route(exchange);
  } else if (exchange->request().method == "GET") {
    serve_asset(exchange);
  } else {
    respond_error(exchange, protocol::ErrorCode::kNotFound,
                  "no route for " + exchange->request().method + " " + path);
  }
}

void WebUi::forward_to_api(const std::shared_ptr<HttpExchange>& exchange) {
  const auto& request = exchange->request();
  // Checked before the body, and again now: the session may have ended
  // while the body arrived.
  bool unavailable = false;
  auto session = session_of(request, unavailable);
  if (unavailable) {
    respond_error(exchange, 503, "storage_unavailable", "the hub could not read its storage; retry",
                  true);
    return;
  }
  if (!session) {
    respond_error(exchange, 401, "unauthorized", "not signed in, or the session ended");
    return;
  }
  if (request.method != "GET" && !BrowserSessions::csrf_matches(*session, request.csrf_token)) {
    respond_error(exchange, 403, "forbidden", "X-CSRF-Token: missing or not this session's");
    return;
  }
  // Asked again by event streams while they last: the cookie's session must
  // still be live (not signed out, expired or revoked).
  auto still_live = [sessions = &sessions_, cookie = request.cookie] {
    return sessions->find(cookie).has_value();
  };
  api_.handle_as(exchange, SessionCaller{std::move(session->principal), std::move(still_live)});
}

void WebUi::session_route(const std::shared_ptr<HttpExchange>& exchange) {
  // Its own error boundary: sign-in and sign-out write hub.db.
  const auto outcome = store_.guarded("web UI session", [&] { session_work(exchange); });
  if (outcome != core::SqlStore::Outcome::kDone && !exchange->responded()) {
    respond_error(exchange, 503, "storage_unavailable",
                  "the hub could not read or write its storage; retry", true);
  }
}

void WebUi::session_work(const std::shared_ptr<HttpExchange>& exchange) {
  const auto& request = exchange->request();
  if (request.method == "POST") {
    sign_in(exchange);
    return;
  }
  auto session = sessions_.find(request.cookie);
  if (request.method == "GET") {
    if (!session) {
      respond_error(exchange, 401, "unauthorized", "not signed in, or the session ended");
      return;
    }
    exchange->respond(json_response(200, session_body(*session)));
    return;
  }
  if (request.method == "DELETE") {
    if (session && !BrowserSessions::csrf_matches(*session, request.csrf_token)) {
      respond_error(exchange, 403, "forbidden", "X-CSRF-Token: missing or not this session's");
      return;
    }
    sessions_.sign_out(request.cookie);
    HttpResponse response;
    response.status = 204;
    response.headers.emplace_back("set-cookie",
                                  BrowserSessions::clearing_cookie(secure_cookies(request)));
    exchange->respond(std::move(response));
    return;
  }
  respond_error(exchange, protocol::ErrorCode::kNotFound,
                "no route for " + request.method + " /ui/session");
}

void WebUi::sign_in(const std::shared_ptr<HttpExchange>& exchange) {
  const auto& request = exchange->request();
  if (auto refused = throttle_.refusal(request)) {
    exchange->respond(std::move(*refused));
    return;
  }
  // Another site's page cannot sign this browser in as someone else (login
  // CSRF): a form can send text/plain or a form encoding, never JSON without
  // the browser asking first; and browsers say where a request came from.
  if (request.content_type.rfind("application/json", 0) != 0) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField,
                  "session: Content-Type must be application/json");
    return;
  }
  if (!request.fetch_site.empty() && request.fetch_site != "same-origin" &&
      request.fetch_site != "none") {
    respond_error(exchange, 403, "forbidden",
                  "session: a sign-in from another site (Sec-Fetch-Site: " + request.fetch_site +
                      ") is refused");
    return;
  }
  auto document = protocol::parse_json_object(request.body, "session");
  if (!document) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, document.error().message);
    return;
  }
  auto token = protocol::JsonObjectReader(*document, "session").required_string("token");
  if (!token) {
    respond_error(exchange, protocol::ErrorCode::kInvalidField, token.error().message);
    return;
  }
  auto session = sessions_.sign_in(*token);
  if (!session) {
    throttle_.failed(request);
    respond_error(exchange, 401, "unauthorized", "session.token: " + sessions_.refusal(*token));
    return;
  }
  core::log_info("ui", "signed in: " + session->principal.name + " (" +
                           std::string(to_string(session->principal.role)) + ") from " +
                           throttle_.source_of(request));
  auto response = json_response(200, session_body(*session));
  response.headers.emplace_back("set-cookie",
                                BrowserSessions::cookie_for(*session, secure_cookies(request)));
  response.headers.emplace_back("cache-control", "no-store");
  exchange->respond(std::move(response));
}

void WebUi::serve_asset(const std::shared_ptr<HttpExchange>& exchange) {
  const std::string& path = exchange->request().path;
  HttpResponse response;
  if (!options_.dev_assets_dir.empty() && read_dev_asset(path, response)) {
    add_page_headers(response);
    exchange->respond(std::move(response));
    return;
  }
  for (const auto& asset : ui_assets()) {
    if (asset.path != path) continue;
    response.content_type = std::string(asset.content_type);
    response.body = std::string(asset.body);
    add_page_headers(response);
    exchange->respond(std::move(response));
    return;
  }
  respond_error(exchange, protocol::ErrorCode::kNotFound, "no page " + path);
}

bool WebUi::read_dev_asset(const std::string& path, HttpResponse& response) const {
  // "/" or "/ui/NAME.EXT", NAME of letters, digits, _ and - in segments: no
  // "..", no absolute path, nothing but the page's kinds of file.
  static const std::regex kName("/ui/([A-Za-z0-9_-]+/)*[A-Za-z0-9_-]+\\.(js|css|html)");
  std::string name;
  if (path == "/") {
    name = "index.html";
  } else if (std::regex_match(path, kName)) {
    name = path.substr(4);
  } else {
    return false;
  }
  std::ifstream file(options_.dev_assets_dir + "/" + name, std::ios::binary);
  if (!file) return false;
  std::ostringstream text;
  text << file.rdbuf();
  response.body = text.str();
  const std::string ext = name.substr(name.rfind('.') + 1);
  response.content_type = ext == "js"    ? "text/javascript; charset=utf-8"
                          : ext == "css" ? "text/css; charset=utf-8"
                                         : "text/html; charset=utf-8";
  return true;
}

std::string WebUi::session_body(const BrowserSession& session) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("name", session.principal.name);
  json.field("role", to_string(session.principal.role));
  json.field("csrf_token", session.csrf_token);
  json.field("expires_at", core::format_utc(std::chrono::system_clock::time_point(
                               std::chrono::milliseconds(session.expires_at_ms))));
  json.end_object();
  return json.str();
}

}  // namespace tether::hub
