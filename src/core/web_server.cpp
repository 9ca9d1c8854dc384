#include "core/web_server.hpp"

#include "core/log.hpp"

#include <libwebsockets.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

namespace tether::core {

namespace {

// lws finishes tearing a context down on later loop turns, after the
// WebServer is gone, and may still call the protocol callback then. The
// callback only touches servers registered here.
std::unordered_set<WebServer*>& live_servers() {
  static std::unordered_set<WebServer*> servers;
  return servers;
}

int server_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* server = static_cast<WebServer*>(lws_context_user(lws_get_context(wsi)));
  if (!live_servers().count(server)) return 0;
  return server->handle_lws_callback(wsi, reason, user, in, len);
}

// No lws validity timers (pings and hangups): each re-arm is an O(n) walk
// of lws's one sorted timer list. WebSocketKeepalive does that job instead.
const lws_retry_bo_t kIdlePolicy = {
    nullptr, 0, 0, /* secs_since_valid_ping */ 0, /* secs_since_valid_hangup */ 0, 0};

constexpr uint64_t kRefusalLogIntervalMs = 10'000;
constexpr uint64_t kAcceptPauseMs = 1'000;

std::string body_too_large_error(size_t limit) {
  return R"({"error":{"code":"body_too_large","message":"request body over )" +
         std::to_string(limit) + R"( bytes","retryable":false}})";
}

}  // namespace

struct WebServer::LwsTables {
  std::string protocol_name;
  lws_protocols protocols[2]{};
};

WebServer::WebServer(Loop& loop, WebServerOptions options, Handlers handlers)
    : loop_(loop),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      max_connections_(options_.max_connections ? options_.max_connections
                                                : default_max_connections()),
      keepalive_(loop, WebSocketKeepaliveOptions{options_.websocket_ping_after_ms,
                                                 options_.websocket_hangup_after_ms}),
      accept_pause_(loop),
      refusal_report_(loop) {
  live_servers().insert(this);
}

WebServer::~WebServer() {
  *alive_ = false;
  context_.reset();  // connections close now; lws calls back while we are still registered
  live_servers().erase(this);
}

Result<std::unique_ptr<WebServer>> WebServer::start(Loop& loop, WebServerOptions options,
                                                    Handlers handlers) {
  auto server = std::make_unique<WebServer>(loop, std::move(options), std::move(handlers));
  if (auto listening = server->listen(); !listening) return listening.error();
  return server;
}

Result<void> WebServer::listen() {
  configure_lws_logging();
  const bool tls = !options_.tls_certificate_file.empty();
  tables_ = std::make_unique<LwsTables>();
  tables_->protocol_name = options_.websocket_protocol;
  lws_protocols& protocol = tables_->protocols[0];
  protocol.name = tables_->protocol_name.c_str();
  protocol.callback = &server_callback;
  protocol.rx_buffer_size = 64 * 1024;

  lws_context_creation_info context_info{};
  context_info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                         LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  if (tls) context_info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  context_info.user = this;
  // TCP keepalive: a peer that vanished without a FIN is found within ~60 s
  // even on a connection that is otherwise idle.
  context_info.ka_time = 30;
  context_info.ka_probes = 3;
  context_info.ka_interval = 10;
  context_ = std::make_unique<LwsContextOwner>(loop_);
  if (!context_->create(context_info)) {
    return make_error(Errc::kIo, "listen_failed", "cannot create the libwebsockets context");
  }

  lws_context_creation_info vhost_info{};
  vhost_info.port = options_.port;  // 0: the kernel picks; port() reports it
  const std::string& address = options_.bind_address;
  const bool any_address = address.empty() || address == "0.0.0.0" || address == "::";
  vhost_info.iface = any_address ? nullptr : address.c_str();
  vhost_info.protocols = tables_->protocols;
  vhost_info.vhost_name = "tether";
  vhost_info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
  if (address.find(':') == std::string::npos && address != "::") {
    vhost_info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  }
  vhost_info.retry_and_idle_policy = &kIdlePolicy;
  // A connection must send its request's headers within this time (lws
  // closes it otherwise); bodies are timed in handle_lws_callback.
  vhost_info.timeout_secs = options_.request_timeout_s;
  vhost_info.timeout_secs_ah_idle = options_.request_timeout_s;
  vhost_info.alpn = "http/1.1";  // no HTTP/2: WebSockets and SSE stay on HTTP/1.1
  if (tls) {
    // lws decides per vhost whether it speaks TLS, from the vhost's options.
    vhost_info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    vhost_info.ssl_cert_filepath = options_.tls_certificate_file.c_str();
    vhost_info.ssl_private_key_filepath = options_.tls_private_key_file.c_str();
  }
  lws_vhost* vhost = lws_create_vhost(context_->get(), &vhost_info);
  if (!vhost) {
    return make_error(Errc::kIo, "listen_failed",
                      "cannot listen on " + address + ":" + std::to_string(vhost_info.port) +
                          (tls ? " with TLS (check the certificate and key files)"
                               : " (address in use or not available?)"));
  }
  port_ = lws_get_vhost_listen_port(vhost);
  listener_ = find_listener(context_->get(), port_);
  if (!listener_) {
    log_warning("http", "cannot find the listening socket; accept() failures will not pause it");
  }
  return {};
}

bool WebServer::admit(lws* listener, const void* filter_args) {
  if (!listener_) listener_ = listener;
  const auto* filter = static_cast<const lws_filter_network_conn_args*>(filter_args);
  std::string address = filter ? address_text(filter->cli_addr) : "?";
  if (connections_.size() >= max_connections_) {
    note_refused("at the limit of " + std::to_string(max_connections_) +
                 " open connections (--max-connections)");
    return false;
  }
  if (auto it = per_address_.find(address);
      it != per_address_.end() && it->second >= options_.max_connections_per_address) {
    note_refused(address + " holds " + std::to_string(it->second) +
                 " connections (--max-connections-per-address)");
    return false;
  }
  admitted_address_ = std::move(address);
  return true;
}

void WebServer::note_refused(const std::string& why) {
  ++refused_total_;
  ++refused_unlogged_;
  loop_.update_time();
  const uint64_t now = loop_.now_ms();
  refused_last_reason_ = why;
  if (refused_logged_at_ms_ != 0 && now - refused_logged_at_ms_ < kRefusalLogIntervalMs) {
    // Said at the end of the interval, with the count.
    if (!refusal_report_.active()) {
      refusal_report_.start(refused_logged_at_ms_ + kRefusalLogIntervalMs - now,
                            [this] { report_refusals(); });
    }
    return;
  }
  report_refusals();
}

void WebServer::report_refusals() {
  if (refused_unlogged_ == 0) return;
  log_warning("http",
              "refused " + std::to_string(refused_unlogged_) +
                  " connection(s) since the last report; the latest: " + refused_last_reason_);
  refused_unlogged_ = 0;
  loop_.update_time();
  refused_logged_at_ms_ = loop_.now_ms();
}

void WebServer::pause_accepting(int error_number) {
  ++accept_failures_total_;
  if (!listener_ || accept_pause_.active()) return;
  // Not from inside lws's accept handler (this runs in its log call): on
  // the next loop turn. The handler may fail a few more times until then.
  loop_.defer([this, alive = alive_, error_number] {
    if (!*alive || !listener_ || accept_pause_.active()) return;
    lws_rx_flow_control(listener_, 0);
    loop_.update_time();
    const uint64_t now = loop_.now_ms();
    if (accept_failure_logged_at_ms_ == 0 ||
        now - accept_failure_logged_at_ms_ >= kRefusalLogIntervalMs) {
      log_warning("http", "accept() failed: " + std::string(std::strerror(error_number)) + " (" +
                              std::to_string(accept_failures_total_) + " times since start, " +
                              std::to_string(connections_.size()) +
                              " connections open); accepting pauses for 1 s after each failure");
      accept_failure_logged_at_ms_ = now;
    }
    accept_pause_.start(kAcceptPauseMs, [this] {
      if (listener_) lws_rx_flow_control(listener_, 1);
    });
  });
}

void WebServer::hold_reads(lws* wsi) {
  // lws 4.1 reads nothing from a connection between a request and the end
  // of its response, yet keeps it in the poll set: a client that leaves
  // while its long poll is parked makes its socket readable (the FIN) on
  // every loop turn until the response, and the server spins (a core at
  // 50 departed polls). So reads are held until the owner writes (lws then
  // also handles the writable event, which it skips for a held connection:
  // HttpExchange::request_writable lets reads go first).
  // HttpExchange::peer_closed() still sees the FIN meanwhile.
  lws_rx_flow_control(wsi, 0);
}

void WebServer::dispatch(std::shared_ptr<HttpExchange> exchange) {
  loop_.defer([this, alive = alive_, exchange = std::move(exchange)] {
    if (!*alive || !handlers_.on_request) return;
    // The owner's handler is the request's error boundary; this catch only
    // keeps a bug in it from ending the process.
    try {
      handlers_.on_request(exchange);
    } catch (const std::exception& e) {
      log_error("http", exchange->request().method + " " + exchange->request().path +
                            ": unhandled error: " + e.what());
      exchange->respond(json_response(
          500, R"({"error":{"code":"internal","message":"internal error","retryable":true}})"));
    }
  });
}

int WebServer::confirm_upgrade(lws* wsi, const char* path) {
  HttpRequest request = read_lws_request(wsi, path);
  UpgradeDecision decision;
  // Synchronous, inside lws: nothing may be thrown through its C frames.
  try {
    if (handlers_.on_upgrade) decision = handlers_.on_upgrade(request);
  } catch (const std::exception& e) {
    log_error("http", "upgrade of " + request.path + ": " + e.what());
    decision.status = 503;
    decision.body =
        R"({"error":{"code":"unavailable","message":"the upgrade could not be decided; retry","retryable":true}})";
  }
  if (decision.status != 0) return write_immediate_response(wsi, decision.status, decision.body);
  upgrading_[wsi] = std::move(request);
  return 0;
}

void WebServer::on_connection_created(lws* wsi) {
  // Straight after the filter, for the connection it admitted.
  if (admitted_address_.empty()) return;
  ++per_address_[admitted_address_];
  connections_[wsi] = std::move(admitted_address_);
  admitted_address_.clear();
}

void WebServer::on_connection_destroyed(lws* wsi) {
  auto it = connections_.find(wsi);
  if (it == connections_.end()) return;
  auto count = per_address_.find(it->second);
  if (count != per_address_.end() && --count->second == 0) per_address_.erase(count);
  connections_.erase(it);
}

void WebServer::on_http_request(lws* wsi, const char* path) {
  auto exchange = std::make_shared<HttpExchange>(loop_, alive_, wsi, read_lws_request(wsi, path));
  exchanges_[wsi] = exchange;
  // The owner decides when to answer (a long poll may wait); lws must not
  // time the transaction out meanwhile.
  lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
  const std::string length_text = header_value(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  const unsigned long long length =
      length_text.empty() ? 0 : std::strtoull(length_text.c_str(), nullptr, 10);
  if (length > options_.max_body_bytes) {
    exchange->close_after_response();
    exchange->respond(json_response(413, body_too_large_error(options_.max_body_bytes)));
    return;
  }
  if (length == 0) {
    hold_reads(wsi);
    dispatch(exchange);
    return;
  }
  // A body is read only for a request the owner lets through (an
  // authenticated one), and only while it keeps coming.
  if (handlers_.on_headers) {
    std::optional<HttpResponse> early;
    try {
      early = handlers_.on_headers(exchange->request());
    } catch (const std::exception& e) {
      log_error("http", exchange->request().path + ": checking the headers failed: " + e.what());
      early = json_response(
          503, R"({"error":{"code":"unavailable","message":"retry","retryable":true}})");
    }
    if (early) {
      exchange->close_after_response();
      exchange->respond(std::move(*early));
      return;
    }
  }
  reading_body_.insert(wsi);
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, static_cast<int>(options_.request_timeout_s));
}

void WebServer::on_http_body(lws* wsi, const void* in, size_t len) {
  auto it = exchanges_.find(wsi);
  if (it == exchanges_.end() || it->second->responded()) return;
  auto& request = const_cast<HttpRequest&>(it->second->request());
  if (request.body.size() + len > options_.max_body_bytes) {
    it->second->close_after_response();
    it->second->respond(json_response(413, body_too_large_error(options_.max_body_bytes)));
    return;
  }
  request.body.append(static_cast<const char*>(in), len);
  lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, static_cast<int>(options_.request_timeout_s));
}

int WebServer::on_http_writable(lws* wsi) {
  auto it = exchanges_.find(wsi);
  if (it == exchanges_.end()) return 0;
  auto exchange = it->second;
  const int outcome = exchange->on_writable(wsi);
  if (outcome == 0) return 0;
  exchanges_.erase(wsi);
  exchange->on_lws_closed();
  if (outcome < 0) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void WebServer::on_http_closed(lws* wsi) {
  if (auto it = exchanges_.find(wsi); it != exchanges_.end()) {
    auto exchange = it->second;
    exchanges_.erase(it);
    exchange->on_lws_closed();
  }
  upgrading_.erase(wsi);
  reading_body_.erase(wsi);
}

void WebServer::on_websocket_established(lws* wsi) {
  HttpRequest request;
  if (auto it = upgrading_.find(wsi); it != upgrading_.end()) {
    request = std::move(it->second);
    upgrading_.erase(it);
  }
  auto connection = std::make_shared<WebSocketConnection>(loop_, alive_, std::move(request),
                                                          options_.max_message_bytes);
  connection->attach(wsi);
  websockets_[wsi] = connection;
  keepalive_.watch(connection);
  loop_.defer([this, alive = alive_, connection] {
    if (!*alive || !handlers_.on_websocket) return;
    try {
      handlers_.on_websocket(connection);
    } catch (const std::exception& e) {
      log_error("websocket", "adopting a connection failed: " + std::string(e.what()));
      connection->close(1011, "internal error");
    }
  });
}

void WebServer::on_websocket_closed(lws* wsi) {
  auto it = websockets_.find(wsi);
  if (it == websockets_.end()) return;
  auto connection = it->second;
  websockets_.erase(it);
  connection->on_lws_closed();
}

int WebServer::handle_lws_callback(lws* wsi, int reason_number, void* user, void* in, size_t len) {
  const auto reason = static_cast<lws_callback_reasons>(reason_number);
  auto websocket = [&]() -> WebSocketConnection* {
    auto it = websockets_.find(wsi);
    return it == websockets_.end() ? nullptr : it->second.get();
  };
  switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
      // lws has accepted a connection: `wsi` is the listener, `user` the
      // peer. Non-zero closes it at once.
      return admit(wsi, user) ? 0 : 1;
    case LWS_CALLBACK_WSI_CREATE:
      on_connection_created(wsi);
      return 0;
    case LWS_CALLBACK_WSI_DESTROY:
      on_connection_destroyed(wsi);
      return 0;
    case LWS_CALLBACK_HTTP:
      on_http_request(wsi, static_cast<const char*>(in));
      return 0;
    case LWS_CALLBACK_HTTP_BODY:
      on_http_body(wsi, in, len);
      return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
      lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);  // the owner may answer later (long polls)
      if (reading_body_.erase(wsi) == 0) return 0;  // dispatched with its headers
      auto it = exchanges_.find(wsi);
      if (it != exchanges_.end() && !it->second->responded()) {
        hold_reads(wsi);
        dispatch(it->second);
      }
      return 0;
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
      return on_http_writable(wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
      on_http_closed(wsi);
      return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return confirm_upgrade(wsi, header_value(wsi, WSI_TOKEN_GET_URI).c_str());
    case LWS_CALLBACK_ESTABLISHED:
      on_websocket_established(wsi);
      return 0;
    case LWS_CALLBACK_RECEIVE:
      return websocket() ? websocket()->on_receive_fragment(wsi, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return websocket() ? websocket()->on_writable(wsi) : 0;
    case LWS_CALLBACK_TIMER:
      return websocket() ? websocket()->on_timer() : 0;
    case LWS_CALLBACK_RECEIVE_PONG:
      if (websocket()) websocket()->on_pong();
      return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (websocket()) websocket()->on_peer_close(in, len);
      return 0;
    case LWS_CALLBACK_CLOSED:
      on_websocket_closed(wsi);
      return 0;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

void WebServer::pause_all_accepting(int error_number) {
  for (WebServer* server : live_servers())
    server->pause_accepting(error_number);
}

}  // namespace tether::core
