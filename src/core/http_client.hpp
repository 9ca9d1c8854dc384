// HTTP requests with cpp-httplib, which blocks.
//
// http_call() is the blocking form (the CLI uses it directly). Coroutines use
// http_request(), which runs http_call() on a ThreadPool and resumes on the
// loop. Each call builds its own httplib::Client: clients are not shared
// between threads, and a fresh one never carries a half-read response over.
// Every timeout is always set.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/loop.hpp"
#include "core/resolver.hpp"
#include "core/result.hpp"
#include "core/thread_pool.hpp"
#include "core/url.hpp"

namespace tether::core {

struct HttpCall {
  std::string method = "GET";
  Url server;          // scheme, host and port are used
  std::string target;  // path and query, e.g. "/api/v1/tasks?state=running"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type = "application/json";
  int connect_timeout_s = 10;
  int read_timeout_s = 30;
  int write_timeout_s = 30;
  // TLS: verification is always on; ca_file adds a CA bundle (PEM) to trust.
  std::string ca_file;
  // Plain http reaches only loopback addresses unless this allows more.
  PlainTextPolicy plain_text = PlainTextPolicy::kLoopbackOnly;
};

struct HttpReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lowercase

  std::string header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Lets another thread abort a call in progress (Ctrl-C in the CLI, a
// cancellation on the loop).
class HttpCallControl {
 public:
  void stop();
  bool stopped() const { return stopped_.load(); }

 private:
  friend struct HttpCallAttachment;
  std::mutex mutex_;
  std::function<void()> stop_client_;
  std::atomic<bool> stopped_{false};
};

// Streams the body to `on_data` instead of buffering it; return false from
// on_data to stop. `on_response` sees the status and headers first and may
// refuse the body by returning false.
struct HttpStreamHandlers {
  std::function<bool(int status, const std::map<std::string, std::string>& headers)> on_response;
  std::function<bool(std::string_view data)> on_data;
};

// The server's name is resolved and each address tried in turn until one
// accepts the connection (a request is never sent to a second address once
// one was reached). Errors: code "http_connect" (could not resolve, connect
// or complete TLS: the message names each address and why) or "http_io"
// (the exchange broke); the message names the server and the cause.
Result<HttpReply> http_call(const HttpCall& call, HttpCallControl* control = nullptr,
                            const HttpStreamHandlers* stream = nullptr);

// The coroutine form: runs on `pool`, resumes on `loop`. Cancellation aborts
// the call in progress.
Co<Result<HttpReply>> http_request(Loop& loop, ThreadPool& pool, HttpCall call,
                                   CancellationToken token = CancellationToken());

}  // namespace tether::core
