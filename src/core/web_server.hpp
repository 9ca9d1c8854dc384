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
#include <utility>

#include "core/http_types.hpp"
#include "core/loop.hpp"
#include "core/lws_context_owner.hpp"
#include "core/result.hpp"
#include "core/timer.hpp"
#include "core/web_socket.hpp"

struct lws;
struct lws_context;

namespace tether::core {

class WebServer;

class HttpExchange : public std::enable_shared_from_this<HttpExchange> {
 public:
  HttpExchange(Loop& loop, std::shared_ptr<bool> owner_alive, lws* wsi, HttpRequest request);
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const HttpRequest& request() const { return request_; }

  // One complete response. Later calls are ignored.
  void respond(HttpResponse response);

  // A response of unknown length that stays open (SSE). Headers go out at
  // once, then whatever write() queues; finish() ends it and closes the
  // connection.
  void begin_stream(int status, std::string content_type,
                    std::vector<std::pair<std::string, std::string>> headers);
  void write(std::string bytes);
  void finish();

  bool responded() const { return phase_ != Phase::kWaiting; }
  // Closes the connection once the response is out (used for errors that
  // leave the request unread, such as a body over the limit).
  void close_after_response() { close_after_response_ = true; }
  // False once the client went away or the response was finished.
  bool is_open() const { return wsi_ != nullptr; }
  size_t queued_bytes() const { return queued_bytes_; }
  // True when the client has closed its end (its FIN arrived, over TLS
  // too). lws reads nothing from a connection in the middle of a response,
  // so a parked long poll or an idle stream whose client left is otherwise
  // noticed only when something is written to it.
  bool peer_closed() const;
  // Runs (on a later loop turn) when the connection closes before or while
  // the response is sent.
  void set_on_closed(std::function<void()> handler) { on_closed_ = std::move(handler); }
  // Runs (on a later loop turn) each time a stream's queue has been written
  // out, so a producer can pace itself instead of queueing everything.
  void set_on_drained(std::function<void()> handler) { on_drained_ = std::move(handler); }

  // --- used by WebServer from lws callbacks ---
  int on_writable(lws* wsi);
  void on_lws_closed();

 private:
  enum class Phase { kWaiting, kResponding, kStreaming, kDone };
  void request_writable();

  Loop& loop_;
  std::shared_ptr<bool> owner_alive_;
  lws* wsi_;
  bool close_after_response_ = false;
  HttpRequest request_;
  Phase phase_ = Phase::kWaiting;
  bool headers_sent_ = false;
  bool finish_requested_ = false;
  HttpResponse response_;
  uint64_t body_sent_ = 0;
  std::deque<std::string> stream_queue_;
  size_t queued_bytes_ = 0;
  std::function<void()> on_closed_;
  std::function<void()> on_drained_;
};

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
};

// What max_connections = 0 means: the soft limit of open files
// (RLIMIT_NOFILE) less a reserve for everything else the process opens
// (storage, logs, pipes): a quarter of the limit, at most 256. The
// listener then never runs into EMFILE through connections alone.
size_t default_max_connections();

// Raises the soft limit of open files to the hard limit (as systemd's
// LimitNOFILE= or `ulimit -Hn` allow); returns {before, after}.
std::pair<uint64_t, uint64_t> raise_open_files_limit();

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

 private:
  friend class HttpExchange;
  struct LwsTables;
  Result<void> listen();
  void dispatch(std::shared_ptr<HttpExchange> exchange);
  int confirm_upgrade(lws* wsi, const char* path);
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
  Timer accept_pause_;
  Timer refusal_report_;
};

// Reads what the owner needs from an lws request (method, path, query, the
// headers in HttpRequest, peer). Shared by the server and its tests.
HttpRequest read_lws_request(lws* wsi, const char* path);

// Routes lws's log lines to stderr with a prefix; errors and warnings only.
void configure_lws_logging();

}  // namespace tether::core
