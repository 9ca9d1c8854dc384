// TcpProxy: a TCP forwarder on 127.0.0.1 between the agent and the hub, for
// network faults a test can switch on and off:
//
//   reset_all()            every open connection is reset (RST both ways),
//                          as when a middlebox drops its state
//   set_blackhole(true)    nothing moves and nothing is answered, and no RST
//                          either: connections stall, new ones never get an
//                          answer, as on a dead link
//   set_refuse_websocket   WebSocket upgrades get "503 Service Unavailable";
//                          plain HTTP still passes, as behind a proxy that
//                          does not speak WebSocket
//   set_hold_websocket     WebSocket upgrades wait, unanswered, until it is
//                          switched off (then they go through); plain HTTP
//                          passes meanwhile, as a slow path to the hub would
//                          delay the agent's channel but not its polls
//
// It runs on its own thread with poll(2), apart from the test's loop, so a
// stalled test loop cannot stall the traffic it is watching.
#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace tether::test {

class TcpProxy {
 public:
  // Forwards 127.0.0.1:port() to 127.0.0.1:target_port.
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void reset_all();
  void set_blackhole(bool on);
  void set_refuse_websocket(bool on);
  void set_hold_websocket(bool on);

  // Counters, for tests that check what happened at the proxy.
  uint64_t connections() const { return connections_; }
  uint64_t websocket_upgrades_refused() const { return refused_; }
  uint64_t websocket_upgrades_held() const { return held_; }

 private:
  struct Connection;
  void run();
  void wake();

  int target_port_;
  int port_ = 0;
  int listener_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> reset_requested_{false};
  std::atomic<bool> blackhole_{false};
  std::atomic<bool> refuse_websocket_{false};
  std::atomic<bool> hold_websocket_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> held_{0};
  std::thread thread_;
};

}  // namespace tether::test
