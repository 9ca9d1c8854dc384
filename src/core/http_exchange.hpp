// HttpExchange: one HTTP request and its response, served by WebServer.
//
// The owner answers at once or later, with one complete response
// (respond) or a stream of unknown length (begin_stream, write, finish:
// Server-Sent Events). Writes happen when lws says the connection is
// writable, at most one piece per callback, so a slow client holds only
// what was queued for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/http_types.hpp"
#include "core/loop.hpp"

struct lws;

namespace tether::core {

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
  // Writes what it can. 0: more to come; 1: the response is complete (the
  // connection may serve another request); -1: close the connection.
  int on_writable(lws* wsi);
  void on_lws_closed();

 private:
  enum class Phase { kWaiting, kResponding, kStreaming, kDone };
  void request_writable();
  // The status line and headers; the same return values as on_writable.
  int write_headers(lws* wsi);
  // The next piece of a complete response's body.
  int write_body_piece(lws* wsi);
  // What a stream has queued.
  int write_stream(lws* wsi);
  uint64_t body_length() const;

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

}  // namespace tether::core
