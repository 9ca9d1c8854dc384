// WebSocketConnection: one WebSocket, server or client side, over libwebsockets.
//
// Sending queues the message and asks lws for a writable callback; messages
// go out in order as the socket drains, so a sender can watch queued_bytes()
// to bound its memory. Received messages are reassembled from fragments and
// delivered on a later loop turn, never inside an lws callback, so handlers
// may resume coroutines. Text frames only: a binary frame closes the
// connection with 1003.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/cancellation.hpp"
#include "core/http_types.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"

struct lws;

namespace tether::core {

// Close codes we use (RFC 6455).
inline constexpr int kCloseNormal = 1000;
inline constexpr int kCloseGoingAway = 1001;
inline constexpr int kCloseProtocolError = 1002;
inline constexpr int kCloseUnsupportedData = 1003;
inline constexpr int kCloseAbnormal = 1006;  // no close frame: the connection dropped
inline constexpr int kClosePolicyViolation = 1008;
inline constexpr int kCloseMessageTooBig = 1009;

class WebSocketConnection : public std::enable_shared_from_this<WebSocketConnection> {
 public:
  // `owner_alive` is the owning server's or client's liveness flag: once it
  // is false, no handler runs any more.
  WebSocketConnection(Loop& loop, std::shared_ptr<bool> owner_alive, HttpRequest upgrade_request,
                      size_t max_message_bytes);
  WebSocketConnection(const WebSocketConnection&) = delete;
  WebSocketConnection& operator=(const WebSocketConnection&) = delete;

  // The HTTP request that opened the connection (path, Authorization, peer).
  const HttpRequest& upgrade_request() const { return upgrade_request_; }

  void send_text(std::string message);
  // Sends what is queued, then closes with `code` and `reason`.
  void close(int code, std::string reason);

  // Sends a ping (RFC 6455 5.5.2) ahead of queued messages; the peer's pong
  // updates last_heard_ms(). Nothing if not open.
  void ping();
  // Drops the connection without a close handshake, for a peer that stopped
  // answering (WebSocketKeepalive); logs `reason` with the peer. Closed
  // later, through on_closed, with kCloseAbnormal.
  void hang_up(std::string reason);
  // The loop's time (Loop::now_ms) when the last message fragment or pong
  // arrived, or the connection was attached.
  uint64_t last_heard_ms() const { return last_heard_ms_; }

  bool is_open() const { return wsi_ != nullptr && !closing_; }
  size_t queued_bytes() const { return queued_bytes_; }
  size_t queued_messages() const { return outgoing_.size(); }
  // The peer's close code once closed (kCloseAbnormal if none was received).
  int close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }

  // Handlers run on a later loop turn. Without an on_message handler,
  // messages wait in a queue for receive().
  void set_on_message(std::function<void(std::string&&)> handler) {
    on_message_ = std::move(handler);
  }
  void set_on_closed(std::function<void(int code)> handler) { on_closed_ = std::move(handler); }
  // Runs whenever the send queue becomes empty.
  void set_on_drained(std::function<void()> handler) { on_drained_ = std::move(handler); }

  class ReceiveAwaiter {
   public:
    ReceiveAwaiter(WebSocketConnection& connection, CancellationToken token)
        : connection_(connection), token_(std::move(token)) {}
    ReceiveAwaiter(const ReceiveAwaiter&) = delete;
    ReceiveAwaiter& operator=(const ReceiveAwaiter&) = delete;
    bool await_ready() const noexcept;
    void await_suspend(std::coroutine_handle<> awaiting);
    // The next message; code "closed" once the connection has closed and the
    // queue is empty; kCancelled if the token fired first.
    Result<std::string> await_resume();

   private:
    WebSocketConnection& connection_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
  };
  ReceiveAwaiter receive(CancellationToken token = CancellationToken()) {
    return ReceiveAwaiter(*this, std::move(token));
  }

  // --- used by WebServer / WebSocketClient from lws callbacks ---
  void attach(lws* wsi) {
    wsi_ = wsi;
    last_heard_ms_ = loop_.now_ms();
  }
  void on_pong() { last_heard_ms_ = loop_.now_ms(); }
  // Returns -1 when lws should close the connection.
  int on_receive_fragment(lws* wsi, const void* data, size_t length);
  int on_writable(lws* wsi);
  int on_timer();
  void on_peer_close(const void* data, size_t length);
  void on_lws_closed();

 private:
  // Closes with `code` after a message we will not take (too large,
  // binary); see web_socket.cpp for why not from the receive callback.
  void refuse(lws* wsi, int code, std::string reason);
  void deliver(std::string&& message);
  void wake_receiver();

  Loop& loop_;
  std::shared_ptr<bool> owner_alive_;
  HttpRequest upgrade_request_;
  size_t max_message_bytes_;
  lws* wsi_ = nullptr;
  std::deque<std::string> outgoing_;  // each with LWS_PRE bytes of headroom
  size_t queued_bytes_ = 0;
  std::string incoming_;
  uint64_t last_heard_ms_ = 0;
  bool ping_wanted_ = false;
  bool hung_up_ = false;
  bool closing_ = false;
  bool refusing_ = false;  // a refused message's remaining fragments are dropped
  bool closed_ = false;
  int pending_close_code_ = kCloseNormal;
  std::string pending_close_reason_;
  int close_code_ = kCloseAbnormal;
  std::string close_reason_;
  std::deque<std::string> received_;
  std::coroutine_handle<> receiver_;
  std::function<void(std::string&&)> on_message_;
  std::function<void(int)> on_closed_;
  std::function<void()> on_drained_;
};

}  // namespace tether::core
