// The server's keepalive (core/websocket_keepalive, core/timing_wheel):
// peers that a hand-written client plays (tests/unit/raw_websocket.hpp),
// because our own WebSocket client answers pings inside libwebsockets and
// could not be silent.
//
// Expected: a peer that answers pings stays connected and is pinged again
// and again; a peer that sends messages is not pinged at all (a message is
// as good as a pong); a peer that stops answering is dropped, and says why.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/notification.hpp"
#include "core/run.hpp"
#include "core/timing_wheel.hpp"
#include "core/web_server.hpp"
#include "raw_websocket.hpp"

using namespace tether;
using namespace tether::core;
using namespace tether::test;

TEST_CASE("TimingWheel hands each entry out once, never early, at most a slot late",
          "[keepalive]") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 random(seed);
    const uint64_t slot_ms = 1 + random() % 100;
    const size_t slots = 1 + random() % 64;
    uint64_t now = random() % 10'000;
    TimingWheel<int> wheel(slot_ms, slots, now);
    std::map<int, uint64_t> due;            // entry -> due_ms, while in the wheel
    std::map<int, uint64_t> tick;           // entry -> the tick whose end hands it out
    uint64_t swept_before = now / slot_ms;  // add() files past entries there
    std::set<int> handed;
    int next_id = 0;
    for (int step = 0; step < 400; ++step) {
      // Some entries due anywhere from the past to several revolutions ahead.
      for (int i = static_cast<int>(random() % 4); i > 0; --i) {
        const uint64_t ahead = random() % (slot_ms * slots * 3 + 1);
        const uint64_t at = random() % 8 == 0 && now > 50 ? now - random() % 50 : now + ahead;
        due[next_id] = at;
        tick[next_id] = std::max(at / slot_ms, swept_before);
        wheel.add(at, next_id++);
      }
      now += random() % (slot_ms * 3 + 1);
      wheel.advance(now, [&](int id) {
        REQUIRE(due.count(id) == 1);
        CHECK(due[id] <= now);                     // never early
        CHECK(now / slot_ms <= tick[id] + 1 + 3);  // at most a slot (+ one step) late
        CHECK(handed.insert(id).second);           // once
        due.erase(id);
      });
      swept_before = std::max(swept_before, now / slot_ms);
      // Nothing left behind whose slot has ended.
      for (const auto& [id, at] : due)
        CHECK(tick[id] >= now / slot_ms);
      CHECK(wheel.size() == due.size());
    }
  }
}

namespace {

enum class PeerKind { kAnswersPings, kSendsMessages, kSilent };

struct PeerReport {
  int pings = 0;
  bool dropped = false;  // the connection ended without a close frame from the server
};

// Plays one peer for `play_ms`, then closes normally (unless dropped first).
PeerReport play_peer(int port, PeerKind kind, uint64_t play_ms, uint64_t seed) {
  std::mt19937_64 random(seed);
  PeerReport report;
  const int fd = connect_loopback(port);
  if (fd < 0) return report;
  set_timeouts(fd, 10);
  const std::string request = upgrade_request("/channel");
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  (void)read_http_head(fd);
  // Short receive timeouts, so the peer can act between frames.
  timeval poll_interval{0, 50'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &poll_interval, sizeof poll_interval);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(play_ms);
  FrameReader reader(fd);
  while (std::chrono::steady_clock::now() < deadline) {
    if (kind == PeerKind::kSendsMessages) {
      const std::string message = frame(0x1, true, R"({"type":"noise"})", true, random);
      ::send(fd, message.data(), message.size(), MSG_NOSIGNAL);
    }
    errno = 0;
    auto next = reader.next();
    if (!next) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;  // nothing yet
      report.dropped = true;
      break;
    }
    if (next->opcode == 0x9) {
      ++report.pings;
      if (kind == PeerKind::kAnswersPings) {
        const std::string pong = frame(0xa, true, next->payload, true, random);
        ::send(fd, pong.data(), pong.size(), MSG_NOSIGNAL);
      }
    }
  }
  if (!report.dropped) {
    const std::string close = frame(0x8, true, std::string("\x03\xe8", 2), true, random);
    ::send(fd, close.data(), close.size(), MSG_NOSIGNAL);
  }
  ::close(fd);
  return report;
}

}  // namespace

TEST_CASE("the server pings quiet WebSockets and drops the ones that stop answering",
          "[keepalive][web]") {
  constexpr uint64_t kPingAfterMs = 200;
  constexpr uint64_t kHangupAfterMs = 600;
  constexpr uint64_t kPlayMs = 2'000;  // ten ping intervals
  Loop loop;
  WebServerOptions options;
  options.websocket_ping_after_ms = kPingAfterMs;
  options.websocket_hangup_after_ms = kHangupAfterMs;
  std::vector<std::shared_ptr<WebSocketConnection>> adopted;
  std::vector<int> close_codes;
  Notification changed(loop);
  WebServer::Handlers handlers;
  handlers.on_request = [](std::shared_ptr<HttpExchange> exchange) {
    exchange->respond(json_response(404, "{}"));
  };
  handlers.on_upgrade = [](const HttpRequest&) { return UpgradeDecision{}; };
  handlers.on_websocket = [&](std::shared_ptr<WebSocketConnection> socket) {
    socket->set_on_message([](std::string&&) {});
    socket->set_on_closed([&](int code) {
      close_codes.push_back(code);
      changed.notify_all();
    });
    adopted.push_back(socket);
  };
  auto started = WebServer::start(loop, options, handlers);
  REQUIRE(started.ok());
  std::unique_ptr<WebServer> server = std::move(*started);
  const int port = server->port();

  std::map<PeerKind, PeerReport> reports;
  std::mutex reports_mutex;
  std::vector<std::thread> peers;
  uint64_t seed = 7;
  for (PeerKind kind : {PeerKind::kAnswersPings, PeerKind::kSendsMessages, PeerKind::kSilent}) {
    peers.emplace_back([&, kind, peer_seed = ++seed] {
      PeerReport report = play_peer(port, kind, kPlayMs, peer_seed);
      std::lock_guard<std::mutex> lock(reports_mutex);
      reports[kind] = report;
    });
  }
  auto body = [&]() -> Co<void> {
    while (close_codes.size() < 3) {
      const bool notified = co_await changed.wait(15'000);
      if (!notified) break;
    }
    server.reset();
  };
  run_to_completion(loop, body());
  for (std::thread& peer : peers)
    peer.join();

  REQUIRE(close_codes.size() == 3);
  const PeerReport& answering = reports[PeerKind::kAnswersPings];
  const PeerReport& talking = reports[PeerKind::kSendsMessages];
  const PeerReport& silent = reports[PeerKind::kSilent];
  CHECK_FALSE(answering.dropped);
  CHECK(answering.pings >= 3);  // pinged again after each answer
  CHECK_FALSE(talking.dropped);
  CHECK(talking.pings == 0);  // heard from all the time
  CHECK(silent.dropped);
  CHECK(silent.pings == 1);  // one ping, then the hangup
  int hung_up = 0;
  for (const auto& socket : adopted)
    if (socket->close_reason().find("pings unanswered") != std::string::npos) ++hung_up;
  CHECK(hung_up == 1);
}
