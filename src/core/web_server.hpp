// WebServer: HTTP, Server-Sent Events and WebSocket on one port, served by
// libwebsockets on our libuv loop (lws "foreign loop" mode).
//
// The owner handles complete requests (bodies already read, within a size
// limit) and answers through an HttpExchange, at once or later: a long poll
// keeps the exchange and responds when work arrives; an SSE stream writes as
// events happen. Request and WebSocket handlers run on a later loop turn, not
// inside lws. Only the upgrade decision is synchronous, because lws needs it
// before it answers the handshake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/http_exchange.hpp"
#include "core/http_types.hpp"
#include "core/loop.hpp"
#include "core/lws_context_owner.hpp"
#include "core/lws_http.hpp"
#include "core/lws_logging.hpp"
#include "core/open_files.hpp"
#include "core/result.hpp"
#include "core/timer.hpp"
#include "core/web_socket.hpp"
#include "core/websocket_keepalive.hpp"

struct lws;
struct lws_context;

namespace tether::core {

class WebServer;

struct WebServerOptions {
  std::string bind_address = "127.0.0.1";
  int port = 0;                      // 0: any free port; see WebServer::port()
  std::string tls_certificate_file;  // both set: HTTPS/WSS only
  std::string tls_private_key_file;
  std::string websocket_protocol = "tether.v1";
  size_t max_body_bytes = 1 << 20;
  size_t max_message_bytes = 1 << 20;
  // Connections open at once, and from one source address; a connection
  // over either is closed as soon as it is accepted (counted in
  // refused_connections(), logged once per interval). 0: see
  // default_max_connections().
  size_t max_connections = 0;
  size_t max_connections_per_address = 1024;
  // A request's headers must arrive within this time, and a body may pause
  // no longer than this between pieces; a connection that is silent that
  // long before its request is closed too.
  unsigned int request_timeout_s = 10;
  // A WebSocket nothing was heard from for this long gets a ping, and is
  // dropped when still silent at the second (see WebSocketKeepalive).
  uint64_t websocket_ping_after_ms = 15'000;
  uint64_t websocket_hangup_after_ms = 45'000;
};

// The answer to a WebSocket upgrade: status 0 accepts; anything else is sent
// as the HTTP response with `body` (JSON) and the connection is refused.
struct UpgradeDecision {
  int status = 0;
  std::string body;
};

class WebServer {
 public:
  struct Handlers {
    std::function<void(std::shared_ptr<HttpExchange>)> on_request;
    // Synchronous, once a request's headers are in and before its body is
    // read: a response here is sent at once and the body is never read (an
    // unauthenticated client cannot make the server hold a body). Optional.
    std::function<std::optional<HttpResponse>(const HttpRequest&)> on_headers;
    std::function<UpgradeDecision(const HttpRequest&)> on_upgrade;  // synchronous
    std::function<void(std::shared_ptr<WebSocketConnection>)> on_websocket;
  };

  // Binds and starts serving. Errors name the address and the cause.
  static Result<std::unique_ptr<WebServer>> start(Loop& loop, WebServerOptions options,
                                                  Handlers handlers);
  WebServer(Loop& loop, WebServerOptions options, Handlers handlers);
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;
  // Closes every connection and releases the port; the loop finishes the
  // cleanup on its next turns.
  ~WebServer();

  int port() const { return port_; }
  Loop& loop() { return loop_; }
  const WebServerOptions& options() const { return options_; }
  size_t open_websockets() const { return websockets_.size(); }
  size_t open_connections() const { return connections_.size(); }
  size_t max_connections() const { return max_connections_; }
  uint64_t refused_connections() const { return refused_total_; }
  uint64_t accept_failures() const { return accept_failures_total_; }

  // Entry point for the lws protocol callback (see web_server.cpp).
  int handle_lws_callback(lws* wsi, int reason, void* user, void* in, size_t len);
  // lws logged that accept() failed with `error_number` (EMFILE, ENFILE):
  // stop accepting for a second instead of being woken for the same
  // pending connection forever. Called from the lws log hook.
  void pause_accepting(int error_number);
  // pause_accepting on every live server (lws reports accept() failures
  // without saying which listener).
  static void pause_all_accepting(int error_number);

 private:
  friend class HttpExchange;
  struct LwsTables;
  Result<void> listen();
  void dispatch(std::shared_ptr<HttpExchange> exchange);
  int confirm_upgrade(lws* wsi, const char* path);
  // One handler per lws callback reason that needs more than a line.
  void on_connection_created(lws* wsi);
  void on_connection_destroyed(lws* wsi);
  void on_http_request(lws* wsi, const char* path);
  void on_http_body(lws* wsi, const void* in, size_t len);
  int on_http_writable(lws* wsi);
  // Stops reading `wsi` until its response is out (see web_server.cpp).
  void hold_reads(lws* wsi);
  void on_http_closed(lws* wsi);
  void on_websocket_established(lws* wsi);
  void on_websocket_closed(lws* wsi);
  // A connection accepted by lws: whether it stays (see WebServerOptions).
  bool admit(lws* listener, const void* filter_args);
  void note_refused(const std::string& why);
  void report_refusals();

  Loop& loop_;
  WebServerOptions options_;
  Handlers handlers_;
  std::unique_ptr<LwsTables> tables_;
  std::unique_ptr<LwsContextOwner> context_;
  int port_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unordered_map<lws*, std::shared_ptr<HttpExchange>> exchanges_;
  // Requests whose body is being read: dispatched at its completion. A
  // request without a body was dispatched with its headers, and lws still
  // reports a (0-byte) body completion for it: that one is not dispatched
  // again.
  std::unordered_set<lws*> reading_body_;
  std::unordered_map<lws*, HttpRequest> upgrading_;
  std::unordered_map<lws*, std::shared_ptr<WebSocketConnection>> websockets_;

  size_t max_connections_ = 0;
  // Every accepted connection and the address it came from.
  std::unordered_map<lws*, std::string> connections_;
  std::unordered_map<std::string, size_t> per_address_;
  std::string admitted_address_;  // between the filter and lws's WSI_CREATE
  lws* listener_ = nullptr;
  uint64_t refused_total_ = 0;
  uint64_t accept_failures_total_ = 0;
  // Refusals since the last log line, and when that was (loop ms).
  uint64_t refused_unlogged_ = 0;
  uint64_t refused_logged_at_ms_ = 0;
  std::string refused_last_reason_;
  uint64_t accept_failure_logged_at_ms_ = 0;
  WebSocketKeepalive keepalive_;
  Timer accept_pause_;
  Timer refusal_report_;
};

}  // namespace tether::core
