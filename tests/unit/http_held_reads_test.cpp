// A request the owner answers later (a parked long poll) or a stream that
// idles (SSE) whose client leaves: lws 4.1 keeps such a socket in its poll
// set without reading it, so the client's FIN made it readable on every
// loop turn and the server spun (a core for 50 departed polls, found by
// bench/fleet). WebServer holds reads while nothing is to be written.
//
// Expected: with 20 such departed clients the loop sleeps (a handful of
// turns in 300 ms, not tens of thousands), the owner sees each one as
// peer_closed(), and a client that stays gets its late answer and then a
// second answer on the same kept-alive connection.
#include <uv.h>

#include <catch2/catch.hpp>
#include <thread>

#include "core/notification.hpp"
#include "core/offload.hpp"
#include "core/run.hpp"
#include "core/thread_pool.hpp"
#include "core/timer.hpp"
#include "core/uv_handle.hpp"
#include "core/web_server.hpp"
#include "raw_websocket.hpp"

using namespace tether;
using namespace tether::core;
using namespace tether::test;

namespace {

// Counts loop turns (libuv runs check handles once per turn).
class TurnCounter {
 public:
  explicit TurnCounter(Loop& loop) {
    uv_check_init(loop.get(), check_.get());
    check_.mark_initialized();
    check_.get()->data = this;
    uv_check_start(check_.get(),
                   [](uv_check_t* handle) { ++static_cast<TurnCounter*>(handle->data)->turns; });
  }
  ~TurnCounter() { uv_check_stop(check_.get()); }  // UvHandle closes it
  uint64_t turns = 0;

 private:
  UvHandle<uv_check_t> check_;
};

// One small JSON response (through its closing brace), read on a pool
// thread so the loop serves meanwhile.
Co<std::string> read_response(Loop& loop, ThreadPool& pool, int fd) {
  std::function<Result<std::string>()> work = [fd]() -> Result<std::string> {
    std::string response;
    char buffer[4096];
    while (response.find('}') == std::string::npos) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
    return response;
  };
  auto reading = run_off_loop<std::string>(loop, pool, std::move(work));
  Result<std::string> read = co_await reading;
  co_return read ? *read : std::string();
}

}  // namespace

TEST_CASE("clients that leave a parked request or an idle stream do not spin the server",
          "[web][held]") {
  constexpr size_t kLeavers = 20;
  Loop loop;
  ThreadPool pool(1);
  std::vector<std::shared_ptr<HttpExchange>> parked;
  Notification arrived(loop);
  WebServer::Handlers handlers;
  handlers.on_request = [&](std::shared_ptr<HttpExchange> exchange) {
    if (exchange->request().path == "/stream") {
      exchange->begin_stream(200, "text/event-stream", {});
      exchange->write(": hello\n\n");
    }
    parked.push_back(std::move(exchange));
    arrived.notify_all();
  };
  auto started = WebServer::start(loop, {}, handlers);
  REQUIRE(started.ok());
  std::unique_ptr<WebServer> server = std::move(*started);
  const int port = server->port();

  std::vector<int> leavers;
  int stayer = -1;
  std::string stayer_first, stayer_second;
  auto body = [&]() -> Co<void> {
    for (size_t i = 0; i < kLeavers; ++i) {
      const int fd = connect_loopback(port);
      REQUIRE(fd >= 0);
      set_timeouts(fd, 10);
      const std::string request = std::string("GET ") + (i % 2 ? "/stream" : "/poll") +
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
      leavers.push_back(fd);
    }
    stayer = connect_loopback(port);
    REQUIRE(stayer >= 0);
    set_timeouts(stayer, 10);
    const std::string poll = "GET /poll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ::send(stayer, poll.data(), poll.size(), MSG_NOSIGNAL);
    while (parked.size() < kLeavers + 1) {
      const bool notified = co_await arrived.wait(10'000);
      if (!notified) break;
    }
    REQUIRE(parked.size() == kLeavers + 1);
    for (int fd : leavers)
      ::close(fd);  // the FINs arrive while the requests wait

    TurnCounter counter(loop);
    auto settle = sleep_for(loop, 300);
    (void)co_await settle;
    const uint64_t turns = counter.turns;
    INFO("loop turns in 300 ms with " << kLeavers << " departed clients: " << turns);
    CHECK(turns < 50);  // spinning makes tens of thousands

    size_t departed = 0;
    std::shared_ptr<HttpExchange> staying;
    for (const auto& exchange : parked) {
      if (exchange->peer_closed()) {
        ++departed;
      } else {
        staying = exchange;
      }
    }
    CHECK(departed == kLeavers);
    REQUIRE(staying);
    staying->respond(json_response(200, R"({"n":1})"));
    stayer_first = co_await read_response(loop, pool, stayer);
    const size_t before = parked.size();
    ::send(stayer, poll.data(), poll.size(), MSG_NOSIGNAL);  // the same connection
    while (parked.size() == before) {
      const bool notified = co_await arrived.wait(10'000);
      if (!notified) break;
    }
    REQUIRE(parked.size() == before + 1);
    parked.back()->respond(json_response(200, R"({"n":2})"));
    stayer_second = co_await read_response(loop, pool, stayer);
    for (const auto& exchange : parked)
      exchange->respond(json_response(204, ""));
    server.reset();
  };
  run_to_completion(loop, body());
  ::close(stayer);
  CHECK(stayer_first.find(R"({"n":1})") != std::string::npos);
  CHECK(stayer_second.find(R"({"n":2})") != std::string::npos);
}
