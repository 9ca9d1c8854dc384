#include "core/http_exchange.hpp"

#include <libwebsockets.h>
#include <poll.h>

#include <algorithm>

#include "core/log.hpp"

namespace tether::core {

HttpExchange::HttpExchange(Loop& loop, std::shared_ptr<bool> owner_alive, lws* wsi,
                           HttpRequest request)
    : loop_(loop), owner_alive_(std::move(owner_alive)), wsi_(wsi), request_(std::move(request)) {}

void HttpExchange::respond(HttpResponse response) {
  if (phase_ != Phase::kWaiting) return;
  response_ = std::move(response);
  phase_ = Phase::kResponding;
  request_writable();
}

void HttpExchange::begin_stream(int status, std::string content_type,
                                std::vector<std::pair<std::string, std::string>> headers) {
  if (phase_ != Phase::kWaiting) return;
  response_.status = status;
  response_.content_type = std::move(content_type);
  response_.headers = std::move(headers);
  phase_ = Phase::kStreaming;
  request_writable();
}

void HttpExchange::write(std::string bytes) {
  if (phase_ != Phase::kStreaming || finish_requested_ || !wsi_ || bytes.empty()) return;
  queued_bytes_ += bytes.size();
  stream_queue_.push_back(std::move(bytes));
  request_writable();
}

void HttpExchange::finish() {
  if (phase_ != Phase::kStreaming) return;
  finish_requested_ = true;
  request_writable();
}

bool HttpExchange::peer_closed() const {
  if (!wsi_) return true;
  const int fd = lws_get_socket_fd(wsi_);
  if (fd < 0) return true;
  // POLLRDHUP: the peer's FIN arrived, even behind unread bytes (a TLS
  // close_notify, a pipelined request), which a peek at the next byte
  // cannot see.
  pollfd watch{fd, POLLRDHUP, 0};
  if (::poll(&watch, 1, 0) < 0) return false;
  return (watch.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

void HttpExchange::request_writable() {
  if (!wsi_) return;
  // WebServer holds reads while the owner has nothing to write, and lws 4.1
  // handles no writable event of an HTTP connection whose reads are held.
  lws_rx_flow_control(wsi_, 1);
  lws_callback_on_writable(wsi_);
}

uint64_t HttpExchange::body_length() const {
  return response_.body_source ? response_.content_length.value_or(0) : response_.body.size();
}

int HttpExchange::on_writable(lws* wsi) {
  if (phase_ == Phase::kWaiting || phase_ == Phase::kDone) return 0;
  if (!headers_sent_) return write_headers(wsi);
  if (phase_ == Phase::kResponding) return write_body_piece(wsi);
  return write_stream(wsi);
}

int HttpExchange::write_headers(lws* wsi) {
  unsigned char buffer[LWS_PRE + 4096];
  unsigned char* start = buffer + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = buffer + sizeof buffer - 1;
  const lws_filepos_t length =
      phase_ == Phase::kResponding ? body_length() : LWS_ILLEGAL_HTTP_CONTENT_LEN;
  if (lws_add_http_common_headers(wsi, static_cast<unsigned int>(response_.status),
                                  response_.content_type.c_str(), length, &p, end)) {
    return -1;
  }
  for (const auto& [name, value] : response_.headers) {
    const std::string field = name + ":";
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(field.c_str()),
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), &p, end)) {
      return -1;
    }
  }
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
  headers_sent_ = true;
  if (phase_ == Phase::kResponding && length == 0) {
    phase_ = Phase::kDone;
    return close_after_response_ ? -1 : 1;
  }
  lws_callback_on_writable(wsi);
  return 0;
}

int HttpExchange::write_body_piece(lws* wsi) {
  const uint64_t total = body_length();
  std::string piece;
  if (response_.body_source) {
    // Runs inside lws: nothing may be thrown through its C frames.
    try {
      piece = response_.body_source();
    } catch (const std::exception& e) {
      log_error("http", request_.path + ": the response body failed: " + e.what());
      return -1;
    }
    if (piece.empty() || body_sent_ + piece.size() > total) return -1;  // the source lied
  } else {
    const size_t size = std::min<uint64_t>(64 * 1024, total - body_sent_);
    piece.assign(response_.body, body_sent_, size);
  }
  const bool last = body_sent_ + piece.size() == total;
  std::string framed(LWS_PRE, '\0');
  framed += piece;
  auto* payload = reinterpret_cast<unsigned char*>(framed.data() + LWS_PRE);
  if (lws_write(wsi, payload, piece.size(), last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
      static_cast<int>(piece.size())) {
    return -1;
  }
  body_sent_ += piece.size();
  if (last) {
    phase_ = Phase::kDone;
    return close_after_response_ ? -1 : 1;
  }
  lws_callback_on_writable(wsi);
  return 0;
}

int HttpExchange::write_stream(lws* wsi) {
  while (!stream_queue_.empty()) {
    std::string framed(LWS_PRE, '\0');
    framed += stream_queue_.front();
    const size_t size = stream_queue_.front().size();
    if (lws_write(wsi, reinterpret_cast<unsigned char*>(framed.data() + LWS_PRE), size,
                  LWS_WRITE_HTTP) < static_cast<int>(size)) {
      return -1;
    }
    queued_bytes_ -= size;
    stream_queue_.pop_front();
    if (lws_send_pipe_choked(wsi)) break;
  }
  if (!stream_queue_.empty()) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  if (finish_requested_) {
    phase_ = Phase::kDone;
    return -1;  // a stream of unknown length ends by closing the connection
  }
  // Idle until the next write: reads held again, as while the request waited
  // (WebServer::hold_reads), so a client that left does not spin the loop.
  lws_rx_flow_control(wsi, 0);
  if (on_drained_) {
    loop_.defer([self = shared_from_this()] {
      if (*self->owner_alive_ && self->on_drained_ && self->stream_queue_.empty())
        self->on_drained_();
    });
  }
  return 0;
}

void HttpExchange::on_lws_closed() {
  if (!wsi_) return;
  wsi_ = nullptr;
  stream_queue_.clear();
  queued_bytes_ = 0;
  if (phase_ == Phase::kDone) return;
  loop_.defer([self = shared_from_this()] {
    if (*self->owner_alive_ && self->on_closed_) self->on_closed_();
  });
}

}  // namespace tether::core
