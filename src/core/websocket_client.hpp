// WebSocketClient: opens client WebSockets with libwebsockets on our loop.
//
// co_await client.connect(options) resolves once the handshake has finished
// (or failed: the error carries the HTTP status of a refused upgrade, so a
// caller can tell 401 from 403 from a network failure). The connection then
// behaves like a server-side one: send_text(), receive() or on_message,
// close(). Idle connections are pinged; a peer silent for dead_after_s is
// dropped.
#pragma once

#include <coroutine>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/loop.hpp"
#include "core/lws_context_owner.hpp"
#include "core/resolver.hpp"
#include "core/result.hpp"
#include "core/url.hpp"
#include "core/web_socket.hpp"

struct lws;
struct lws_context;

namespace tether::core {

struct WebSocketConnectOptions {
  Url url;                                                   // ws:// or wss://
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Authorization
  std::string protocol = "tether.v1";
  size_t max_message_bytes = 1 << 20;
  // Plain ws reaches only loopback addresses unless this allows more.
  PlainTextPolicy plain_text = PlainTextPolicy::kLoopbackOnly;
};

struct WebSocketClientOptions {
  std::string ca_file;  // extra CA bundle for wss; the system store is always used too
  uint16_t ping_after_idle_s = 15;
  uint16_t dead_after_s = 45;
  // A connect whose handshake has not finished by then fails.
  uint16_t handshake_timeout_s = 20;
};

class WebSocketClient {
 public:
  static Result<std::unique_ptr<WebSocketClient>> create(Loop& loop,
                                                         WebSocketClientOptions options);
  WebSocketClient(Loop& loop, WebSocketClientOptions options);
  WebSocketClient(const WebSocketClient&) = delete;
  WebSocketClient& operator=(const WebSocketClient&) = delete;
  // Drops every connection; the loop finishes the cleanup on later turns.
  ~WebSocketClient();

  // Resolves the URL's host and tries each address in turn (getaddrinfo's
  // order) until one completes the handshake or refuses the upgrade; each
  // failed address is logged, and named in the error if all fail.
  // Errors: "ws_refused" (the server answered the upgrade with an HTTP error;
  // `message` starts with the status), "ws_connect" (name resolution,
  // network or TLS, every address), kCancelled.
  Co<Result<std::shared_ptr<WebSocketConnection>>> connect(
      WebSocketConnectOptions options, CancellationToken token = CancellationToken());

  int handle_lws_callback(lws* wsi, int reason, void* user, void* in, size_t len);

 private:
  struct Pending;
  struct LwsTables;
  Co<Result<std::shared_ptr<WebSocketConnection>>> connect_address(
      const WebSocketConnectOptions& options, const std::string& address, CancellationToken token);
  Result<void> create_context();
  // LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: the connect options' headers.
  int append_headers(lws* wsi, const Pending& pending, unsigned char** p, size_t room);
  // LWS_CALLBACK_CLIENT_CONNECTION_ERROR: "ws_refused" with the HTTP status,
  // or "ws_connect" with why, in words.
  void fail_connect(lws* wsi, Pending* pending, const char* lws_reason);
  void finish_pending(Pending* pending, Result<std::shared_ptr<WebSocketConnection>> outcome);

  Loop& loop_;
  WebSocketClientOptions options_;
  std::unique_ptr<LwsTables> tables_;
  std::unique_ptr<LwsContextOwner> context_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unordered_map<Pending*, std::shared_ptr<Pending>> pending_;
  std::unordered_map<lws*, std::shared_ptr<WebSocketConnection>> connections_;
};

}  // namespace tether::core
