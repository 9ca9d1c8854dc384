#include "core/web_socket.hpp"

#include <libwebsockets.h>

#include "core/log.hpp"

#include <cstring>
#include <string>
#include <utility>

namespace tether::core {

WebSocketConnection::WebSocketConnection(Loop& loop, std::shared_ptr<bool> owner_alive,
                                         HttpRequest upgrade_request, size_t max_message_bytes)
    : loop_(loop),
      owner_alive_(std::move(owner_alive)),
      upgrade_request_(std::move(upgrade_request)),
      max_message_bytes_(max_message_bytes) {}

void WebSocketConnection::send_text(std::string message) {
  if (!is_open()) return;
  queued_bytes_ += message.size();
  // lws needs LWS_PRE writable bytes in front of the payload for the frame header.
  std::string framed(LWS_PRE, '\0');
  framed += message;
  outgoing_.push_back(std::move(framed));
  lws_callback_on_writable(wsi_);
}

void WebSocketConnection::close(int code, std::string reason) {
  if (!is_open()) return;
  closing_ = true;
  pending_close_code_ = code;
  pending_close_reason_ = std::move(reason);
  if (pending_close_reason_.size() > 120) pending_close_reason_.resize(120);
  lws_callback_on_writable(wsi_);
}

void WebSocketConnection::ping() {
  if (!is_open()) return;
  ping_wanted_ = true;
  lws_callback_on_writable(wsi_);
}

void WebSocketConnection::hang_up(std::string reason) {
  if (!is_open()) return;
  const std::string from = upgrade_request_.path.empty()
                               ? std::string("the peer")
                               : upgrade_request_.path + " from " + upgrade_request_.peer_address;
  log_warning("websocket", from + ": " + reason + "; dropping the connection");
  closing_ = true;  // nothing more goes to lws for this connection
  hung_up_ = true;
  close_reason_ = std::move(reason);
  // Timed out at once by lws itself, on its next service: never closed from
  // here, outside a callback.
  lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int WebSocketConnection::on_writable(lws* wsi) {
  if (hung_up_) return -1;  // lws closes it now, as the timeout would
  if (ping_wanted_ && !closing_) {
    ping_wanted_ = false;
    // A payload, because lws 4.1 reports no empty pong (the peer echoes
    // it, RFC 6455 5.5.3): the loop time it was sent, 8 bytes.
    unsigned char frame[LWS_PRE + 8];
    const uint64_t sent_ms = loop_.now_ms();
    std::memcpy(frame + LWS_PRE, &sent_ms, sizeof sent_ms);
    if (lws_write(wsi, frame + LWS_PRE, sizeof sent_ms, LWS_WRITE_PING) < 0) return -1;
    if (lws_send_pipe_choked(wsi)) {
      if (!outgoing_.empty()) lws_callback_on_writable(wsi);
      return 0;
    }
  }
  while (!outgoing_.empty()) {
    std::string& framed = outgoing_.front();
    const size_t length = framed.size() - LWS_PRE;
    auto* payload = reinterpret_cast<unsigned char*>(framed.data() + LWS_PRE);
    // lws takes the whole message; what the kernel did not accept it keeps and
    // sends before the next writable callback.
    if (lws_write(wsi, payload, length, LWS_WRITE_TEXT) < static_cast<int>(length)) return -1;
    queued_bytes_ -= length;
    outgoing_.pop_front();
    if (lws_send_pipe_choked(wsi)) break;
  }
  if (!outgoing_.empty()) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  if (closing_) {
    // Closing from a writable callback would drop the socket without a close
    // frame; lws sends the reason when a timer callback asks to close.
    lws_close_reason(wsi, static_cast<lws_close_status>(pending_close_code_),
                     reinterpret_cast<unsigned char*>(pending_close_reason_.data()),
                     pending_close_reason_.size());
    close_code_ = pending_close_code_;
    close_reason_ = pending_close_reason_;
    lws_set_timer_usecs(wsi, 1);
    return 0;
  }
  if (on_drained_) {
    loop_.defer([self = shared_from_this()] {
      if (*self->owner_alive_ && self->on_drained_ && self->outgoing_.empty()) self->on_drained_();
    });
  }
  return 0;
}

int WebSocketConnection::on_timer() {
  return closing_ ? -1 : 0;
}

void WebSocketConnection::refuse(lws* wsi, int code, std::string reason) {
  // Never by returning nonzero from a receive callback: lws 4.1's client
  // parser then skips resetting its receive buffer and goes on storing the
  // rest of the frame past its end (a 1.13 MB message corrupted the agent's
  // heap). The rest of the message is read and dropped; the close goes out
  // from the timer callback, as close() does.
  refusing_ = true;
  closing_ = true;
  close_code_ = code;
  pending_close_code_ = code;
  pending_close_reason_ = reason.substr(0, 120);
  if (reason.size() > 120) reason.resize(120);
  close_reason_ = reason;
  incoming_.clear();
  incoming_.shrink_to_fit();
  lws_close_reason(wsi, static_cast<lws_close_status>(code),
                   reinterpret_cast<unsigned char*>(reason.data()), reason.size());
  lws_set_timer_usecs(wsi, 1);
}

int WebSocketConnection::on_receive_fragment(lws* wsi, const void* data, size_t length) {
  if (refusing_ || closed_) return 0;  // the rest of a refused message
  if (lws_frame_is_binary(wsi)) {
    refuse(wsi, kCloseUnsupportedData, "text frames only");
    return 0;
  }
  if (incoming_.size() + length > max_message_bytes_) {
    // Refused as it arrives, before it is buffered: the peer learns the
    // limit from the close reason.
    std::string reason = "message over " + std::to_string(max_message_bytes_) + " bytes";
    const std::string from = upgrade_request_.path.empty()
                                 ? std::string("the peer")
                                 : upgrade_request_.path + " from " + upgrade_request_.peer_address;
    log_warning("websocket", from + ": " + reason + "; closing (1009)");
    refuse(wsi, kCloseMessageTooBig, std::move(reason));
    return 0;
  }
  last_heard_ms_ = loop_.now_ms();
  incoming_.append(static_cast<const char*>(data), length);
  if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
    deliver(std::exchange(incoming_, std::string()));
  }
  return 0;
}

void WebSocketConnection::deliver(std::string&& message) {
  received_.push_back(std::move(message));
  loop_.defer([self = shared_from_this()] {
    if (!*self->owner_alive_) return;
    if (self->on_message_) {
      while (!self->received_.empty() && self->on_message_) {
        std::string next = std::move(self->received_.front());
        self->received_.pop_front();
        // The owner's handler is the message's error boundary; this catch
        // only keeps a bug in it from ending the process.
        try {
          self->on_message_(std::move(next));
        } catch (const std::exception& e) {
          log_error("websocket", "a message handler failed: " + std::string(e.what()));
          self->close(1011, "internal error");
          return;
        }
      }
    } else {
      self->wake_receiver();
    }
  });
}

void WebSocketConnection::on_peer_close(const void* data, size_t length) {
  // The close frame payload: a two-byte big-endian code, then the reason.
  if (length >= 2) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    close_code_ = (bytes[0] << 8) | bytes[1];
    close_reason_.assign(reinterpret_cast<const char*>(bytes + 2), length - 2);
  }
}

void WebSocketConnection::on_lws_closed() {
  if (closed_) return;
  closed_ = true;
  wsi_ = nullptr;
  outgoing_.clear();
  queued_bytes_ = 0;
  loop_.defer([self = shared_from_this()] {
    self->wake_receiver();
    if (*self->owner_alive_ && self->on_closed_) self->on_closed_(self->close_code_);
  });
}

void WebSocketConnection::wake_receiver() {
  // Each delivery defers one wake; an earlier receive() may already have
  // taken the message through await_ready, so only wake a receiver that
  // has something to read.
  if (receiver_ && (!received_.empty() || closed_)) std::exchange(receiver_, {}).resume();
}

bool WebSocketConnection::ReceiveAwaiter::await_ready() const noexcept {
  return !connection_.received_.empty() || connection_.closed_ || token_.cancelled();
}

void WebSocketConnection::ReceiveAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  connection_.receiver_ = awaiting;
  registration_.emplace(token_, [this] {
    auto receiver = std::exchange(connection_.receiver_, {});
    if (receiver) connection_.loop_.defer([receiver] { receiver.resume(); });
  });
}

Result<std::string> WebSocketConnection::ReceiveAwaiter::await_resume() {
  registration_.reset();
  if (!connection_.received_.empty()) {
    std::string message = std::move(connection_.received_.front());
    connection_.received_.pop_front();
    return message;
  }
  if (connection_.closed_) {
    return make_error(Errc::kState, "closed",
                      "connection closed with code " + std::to_string(connection_.close_code_));
  }
  return cancelled_error();
}

}  // namespace tether::core
