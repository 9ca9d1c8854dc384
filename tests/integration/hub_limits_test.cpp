// The hub's limits against a real tether-hub: authentication failures per
// source, frame and body sizes, connections per agent, SSE streams. Each
// case fails when its limit is taken out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/co_group.hpp"
#include "core/timer.hpp"
#include "hub/poll_waiters.hpp"
#include "protocol/frames.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using tether::protocol::StreamName;

namespace {

// A poll of edge-1 as if relayed by a proxy on loopback for `forwarded_for`.
core::Co<core::HttpReply> poll_from(World& world, std::string forwarded_for, std::string token) {
  core::HttpCall call;
  call.server = *core::parse_url(world.hub.url());
  call.target = "/api/v1/agents/edge-1/tasks/next?wait=0";
  call.headers.emplace_back("Authorization", "Bearer " + token);
  if (!forwarded_for.empty()) call.headers.emplace_back("X-Forwarded-For", forwarded_for);
  call.read_timeout_s = 10;
  auto reply = co_await core::http_request(world.loop, world.pool, std::move(call));
  REQUIRE(reply.ok());
  co_return std::move(*reply);
}

// An HTTP request on a plain blocking socket, kept open after the response
// headers: an SSE viewer that stays connected. The hub is another process,
// so blocking here (with a receive timeout) stalls only the test.
class RawStream {
 public:
  RawStream(int port, const std::string& request) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    char buffer[4096];
    while (head_.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      head_.append(buffer, static_cast<size_t>(n));
    }
    // A refusal's body may come in a later packet than its headers.
    const size_t length_at = head_.find("content-length: ");
    const size_t body_at = head_.find("\r\n\r\n");
    if (length_at != std::string::npos && body_at != std::string::npos) {
      const size_t total = body_at + 4 + std::stoul(head_.substr(length_at + 16));
      while (head_.size() < total) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        head_.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  ~RawStream() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawStream(const RawStream&) = delete;
  RawStream& operator=(const RawStream&) = delete;

  // "HTTP/1.1 200 OK ...": the headers, the whole body when they give its
  // length, else whatever came with them.
  const std::string& head() const { return head_; }
  int status() const { return head_.size() > 12 ? std::atoi(head_.c_str() + 9) : 0; }

 private:
  int fd_ = -1;
  std::string head_;
};

std::string events_request(const World& world, const std::string& task_id) {
  return "GET /api/v1/tasks/" + task_id +
         "/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + world.admin_token +
         "\r\nAccept: text/event-stream\r\n\r\n";
}

}  // namespace

TEST_CASE("failed authentications are throttled per source; a token that verifies never is",
          "[hub]") {
  World world({"--trusted-proxy", "127.0.0.1"});
  world.run([&]() -> core::Co<void> {
    // A budget of 30 failures, then 429 with Retry-After for that source.
    for (int i = 0; i < 30; ++i) {
      auto reply = co_await poll_from(world, "203.0.113.7", "tta_guess" + std::to_string(i));
      REQUIRE(reply.status == 401);
    }
    auto blocked = co_await poll_from(world, "203.0.113.7", "tta_guess");
    CHECK(blocked.status == 429);
    CHECK_THAT(blocked.body, Catch::Contains("too_many_auth_failures"));
    CHECK_THAT(blocked.body, Catch::Contains("203.0.113.7"));
    CHECK_FALSE(blocked.header("retry-after").empty());
    // An agent behind the same address (a NAT, a proxy) is not locked out
    // by its neighbour: its token verifies.
    auto right = co_await poll_from(world, "203.0.113.7", world.agent_token);
    CHECK(right.status == 204);

    // Other sources carry on, including the proxy's own address.
    auto other = co_await poll_from(world, "203.0.113.8", "tta_guess");
    CHECK(other.status == 401);
    auto direct = co_await poll_from(world, "", world.agent_token);
    CHECK(direct.status == 204);
    // Only the entry the proxy appended counts; a client writes the rest.
    auto forged = co_await poll_from(world, "203.0.113.8, 203.0.113.7", "tta_guess");
    CHECK(forged.status == 429);
    auto dodging = co_await poll_from(world, "203.0.113.7, 198.51.100.1", "tta_guess");
    CHECK(dodging.status == 401);

    // Without a proxy header the TCP peer is the source; the channel and the
    // operator API refuse bad tokens with 429 once it is blocked, and take
    // good ones.
    for (int i = 0; i < 30; ++i) {
      auto reply = co_await poll_from(world, "", "tta_guess");
      REQUIRE(reply.status == 401);
    }
    auto intruder = co_await poll_from(world, "", "tta_guess");
    CHECK(intruder.status == 429);
    auto agent = world.agent("edge-2");
    co_await agent.connect_and_hello();
    auto op = world.op();
    auto listing = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listing.ok());
    CHECK(listing->status == 200);
    // Said once per blocked source, not once per refused request.
    const std::string& log = world.hub.log();
    size_t said = 0;
    for (size_t at = log.find("failed authentications from"); at != std::string::npos;
         at = log.find("failed authentications from", at + 1)) {
      ++said;
    }
    CHECK(said == 2);
    agent.close();
  });
}

TEST_CASE("X-Forwarded-For from a peer that is not a listed proxy is ignored", "[hub]") {
  // No --trusted-proxy: a client on loopback can neither dodge its budget by
  // rotating the header nor spend another address's.
  World world;
  world.run([&]() -> core::Co<void> {
    for (int i = 0; i < 30; ++i) {
      auto reply = co_await poll_from(world, "198.51.100." + std::to_string(i), "tta_guess");
      REQUIRE(reply.status == 401);
    }
    auto rotated = co_await poll_from(world, "198.51.100.99", "tta_guess");
    CHECK(rotated.status == 429);
    CHECK_THAT(rotated.body, Catch::Contains("127.0.0.1"));
    CHECK_THAT(world.hub.log(), !Catch::Contains("198.51.100"));
    auto agent = co_await poll_from(world, "198.51.100.99", world.agent_token);
    CHECK(agent.status == 204);
  });
}

TEST_CASE("hub limits: frame and body size, one channel and four parked polls per agent", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto big = world.agent("edge-1");
    auto healthy = world.agent("edge-2");
    co_await big.connect_and_hello();
    co_await healthy.connect_and_hello();

    // A frame over the limit closes that channel with 1009 and the limit.
    big.send_raw(std::string(protocol::kMaxFrameBytes + 1, ' '));
    auto closed = co_await big.receive();
    CHECK_FALSE(closed.ok());
    CHECK(big.socket()->close_code() == core::kCloseMessageTooBig);
    CHECK_THAT(big.socket()->close_reason(),
               Catch::Contains("over " + std::to_string(protocol::kMaxFrameBytes) + " bytes"));
    // A frame at the limit is read (and refused for what it says, not its size).
    auto at_limit = world.agent("edge-1");
    co_await at_limit.connect_and_hello();
    at_limit.send_raw(std::string(protocol::kMaxFrameBytes, ' '));
    auto error = expect<protocol::ErrorFrame>(co_await at_limit.receive());
    CHECK(error.code != "frame_too_large");

    // A body over the limit is 413, named, as soon as its length is known
    // (before it is sent: a client still writing would see a reset instead).
    RawStream too_large(world.hub.port(),
                        "POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                            world.admin_token +
                            "\r\nContent-Type: application/json\r\n"
                            "Content-Length: " +
                            std::to_string(protocol::kMaxFrameBytes + 1) + "\r\n\r\n");
    CHECK(too_large.status() == 413);
    CHECK_THAT(too_large.head(), Catch::Contains("body_too_large"));
    CHECK_THAT(too_large.head(),
               Catch::Contains("over " + std::to_string(protocol::kMaxFrameBytes) + " bytes"));

    // One channel per agent: a second one replaces the first.
    auto second = world.agent("edge-2");
    co_await second.connect_and_hello();
    auto replaced = co_await healthy.receive();
    CHECK_FALSE(replaced.ok());
    CHECK(healthy.socket()->close_code() == hub::kCloseReplaced);

    // Four parked polls per agent: of five at once, one is 429 and says why;
    // the four others wait and are answered.
    std::vector<ScriptedAgent> pollers;
    for (size_t i = 0; i <= hub::kMaxParkedPollsPerAgent; ++i)
      pollers.push_back(world.agent("edge-2"));
    core::CoGroup parked;
    int answered = 0;
    std::vector<std::string> refusals;
    auto park = [&](ScriptedAgent& poller) -> core::Co<void> {
      auto reply = co_await poller.poll(2);
      if (reply.ok() && reply->status == 204) {
        ++answered;
      } else {
        refusals.push_back(reply.ok() ? std::to_string(reply->status) + " " + reply->body
                                      : reply.error().message);
      }
    };
    for (auto& poller : pollers)
      parked.spawn(park(poller));
    co_await parked.join();
    CHECK(answered == static_cast<int>(hub::kMaxParkedPollsPerAgent));
    REQUIRE(refusals.size() == 1);
    CHECK_THAT(refusals[0], Catch::StartsWith("429"));
    CHECK_THAT(refusals[0], Catch::Contains("already has 4 polls waiting"));
    second.close();
    at_limit.close();
  });
}

TEST_CASE("SSE streams are bounded by --max-event-streams, with a clear 503", "[hub]") {
  World world({"--max-event-streams", "2"});
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::string task_id = co_await op.submit(submit_body("edge-1"));
    const std::string request = events_request(world, task_id);
    auto first = std::make_unique<RawStream>(world.hub.port(), request);
    RawStream second(world.hub.port(), request);
    CHECK(first->status() == 200);
    CHECK(second.status() == 200);
    RawStream third(world.hub.port(), request);
    CHECK(third.status() == 503);
    CHECK_THAT(third.head(), Catch::Contains("too_many_streams"));
    CHECK_THAT(third.head(), Catch::Contains("--max-event-streams 2"));
    CHECK_THAT(third.head(), Catch::Contains("retry-after"));
    // A viewer that leaves frees its place.
    first.reset();
    int status = 0;
    for (int attempt = 0; attempt < 100 && status != 200; ++attempt) {
      RawStream again(world.hub.port(), request);
      status = again.status();
      if (status != 200) {
        auto pause = core::sleep_for(world.loop, 20);
        (void)co_await pause;
      }
    }
    CHECK(status == 200);
  });
}

TEST_CASE("numbers from clients out of range get 400 naming the field, and change nothing",
          "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    auto spec = co_await started_task(op, agent);
    agent.send(output(spec, StreamName::kStdout, 1, 0, "0123456789"));
    co_await acks_through(agent, StreamName::kStdout, 1);
    const std::string base = "/api/v1/tasks/" + spec.task_id;
    // 2^63 and 2^64-1 used to wrap to negative offsets (everything again,
    // or a Content-Length the body did not match).
    for (const std::string bad : {"9223372036854775808", "18446744073709551615",
                                  "99999999999999999999", "-1", "+1", "1e3", " 1", ""}) {
      INFO("offset=" << bad);
      auto reply = co_await op.request("GET", base + "/output?stream=stdout&offset=" + bad);
      REQUIRE(reply.ok());
      CHECK(reply->status == 400);
      CHECK_THAT(reply->body, Catch::Contains("offset"));
    }
    auto edge =
        co_await op.request("GET", base + "/output?stream=stdout&offset=9223372036854775807");
    REQUIRE(edge.ok());
    CHECK(edge->status == 200);
    CHECK(edge->body.empty());
    auto tail = co_await op.request("GET", base + "/output?stream=stdout&offset=7");
    REQUIRE(tail.ok());
    CHECK(tail->body == "789");
    for (const std::string bad : {"9223372036854775808", "18446744073709551615", "-5"}) {
      INFO("Last-Event-ID: " << bad);
      RawStream stream(world.hub.port(), "GET " + base +
                                             "/events?follow=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                             "Authorization: Bearer " +
                                             world.admin_token + "\r\nLast-Event-ID: " + bad +
                                             "\r\n\r\n");
      CHECK(stream.status() == 400);
      CHECK_THAT(stream.head(), Catch::Contains("Last-Event-ID"));
      auto by_query = co_await op.request("GET", base + "/events?follow=0&last_event_id=" + bad);
      REQUIRE(by_query.ok());
      CHECK(by_query->status == 400);
    }
    for (const std::string bad : {"18446744073709551616", "1001", "0"}) {
      auto listing = co_await op.request("GET", "/api/v1/tasks?limit=" + bad);
      REQUIRE(listing.ok());
      CHECK(listing->status == 400);
    }
    auto poll = co_await poll_from(world, "", world.agent_token);  // wait=0 parses
    CHECK(poll.status == 204);
    // JSON numbers past 2^63-1 are refused by name too.
    auto submitted = co_await op.request(
        "POST", "/api/v1/tasks",
        R"({"agent":"edge-1","command":{"argv":["true"]},"timeout_s":9223372036854775808})");
    REQUIRE(submitted.ok());
    CHECK(submitted->status == 400);
    CHECK_THAT(submitted->body, Catch::Contains("timeout_s"));
    agent.close();
  });
}

namespace {

// A client socket from `source` (any 127.0.0.0/8 address) to the hub, for
// tests that hold many connections. Blocking, with a receive timeout.
class RawClient {
 public:
  RawClient(int port, const char* source) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, source, &local.sin_addr) == 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Sends what it can; false once the hub has closed its end.
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // Whether the hub closed the connection within `timeout_ms` (whatever it
  // sent before is read and kept in received()).
  bool closed_within(int timeout_ms) {
    pollfd watch{fd_, POLLIN, 0};
    char buffer[4096];
    for (;;) {
      if (::poll(&watch, 1, timeout_ms) <= 0) return false;
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
      if (n > 0) received_.append(buffer, static_cast<size_t>(n));
    }
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
};

// The process's user and system CPU time in clock ticks (/proc/PID/stat).
uint64_t cpu_ticks(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t after_name = text.rfind(')');
  REQUIRE(after_name != std::string::npos);
  std::istringstream fields(text.substr(after_name + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return utime + stime;
}

uint64_t rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  FAIL("no VmRSS for " << pid);
  return 0;
}

}  // namespace

TEST_CASE("silent and slow clients are closed after --request-timeout-s; no body without a token",
          "[hub]") {
  World world({"--request-timeout-s", "2"});
  world.run([&]() -> core::Co<void> {
    const int port = world.hub.port();
    RawClient silent(port, "127.0.0.2");
    RawClient partial(port, "127.0.0.2");
    REQUIRE(partial.send("GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n"));
    RawClient stalled_body(port, "127.0.0.2");  // authenticated, then the body stops
    REQUIRE(stalled_body.send(
        "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + world.admin_token +
        "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"));
    // Without a token, a body is refused before a byte of it is read.
    RawClient anonymous(port, "127.0.0.2");
    REQUIRE(anonymous.send(
        "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"));
    CHECK(anonymous.closed_within(5'000));
    CHECK_THAT(anonymous.received(), Catch::StartsWith("HTTP/1.1 401"));
    // Each of the others is closed by the hub, not held forever (the
    // bound here is only how long the test waits).
    CHECK(silent.closed_within(20'000));
    CHECK(partial.closed_within(20'000));
    CHECK(stalled_body.closed_within(20'000));
    // A client that sends its request in time is served as before.
    auto op = world.op();
    auto listing = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listing.ok());
    CHECK(listing->status == 200);
  });
}

TEST_CASE("bodies from clients without a token do not grow the hub's memory", "[hub]") {
  World world;
  world.run([&]() -> core::Co<void> {
    const int pid = world.hub.pid();
    const uint64_t before = rss_kib(pid);
    // 200 connections each starting a 1 MiB body (the limit) and sending
    // most of it: held, they were 200 MiB.
    std::vector<std::unique_ptr<RawClient>> clients;
    const std::string piece(64 * 1024, 'x');
    for (int i = 0; i < 200; ++i) {
      auto client = std::make_unique<RawClient>(world.hub.port(), "127.0.0.3");
      if (client->send(
              "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")) {
        for (int k = 0; k < 15 && client->send(piece); ++k) {
        }
      }
      clients.push_back(std::move(client));
    }
    for (auto& client : clients)
      CHECK(client->closed_within(10'000));
    const uint64_t after = rss_kib(pid);
    INFO("hub RSS " << before << " KiB before, " << after << " KiB after");
    CHECK(after < before + 32 * 1024);
    co_return;
  });
}

TEST_CASE("connections over --max-connections or the per-address cap are closed at once", "[hub]") {
  World world({"--max-connections", "25", "--max-connections-per-address", "10"});
  world.run([&]() -> core::Co<void> {
    const int port = world.hub.port();
    auto open_from = [&](const char* source, int count) {
      std::vector<std::unique_ptr<RawClient>> clients;
      for (int i = 0; i < count; ++i)
        clients.push_back(std::make_unique<RawClient>(port, source));
      return clients;
    };
    auto count_closed = [](std::vector<std::unique_ptr<RawClient>>& clients) {
      int closed = 0;
      for (auto& client : clients)
        closed += client->closed_within(300) ? 1 : 0;
      return closed;
    };
    auto first = open_from("127.0.0.2", 15);
    CHECK(count_closed(first) == 5);  // 10 from one address
    auto second = open_from("127.0.0.3", 15);
    CHECK(count_closed(second) == 5);
    auto third = open_from("127.0.0.4", 10);
    CHECK(count_closed(third) == 5);  // 25 in all
    auto op = world.op();
    auto refused = co_await op.request("GET", "/api/v1/tasks");
    CHECK_FALSE(refused.ok());
    first.clear();  // room again, once the hub has read the closes
    auto served = co_await op.request("GET", "/api/v1/tasks");
    for (int i = 0; i < 100 && !served.ok(); ++i) {
      auto waited = co_await core::sleep_for(world.loop, 20);
      (void)waited;
      served = co_await op.request("GET", "/api/v1/tasks");
    }
    REQUIRE(served.ok());
    CHECK(served->status == 200);
    const bool reported = co_await world.hub.wait_for_log("refused", 15'000);
    CHECK(reported);
    CHECK_THAT(world.hub.log(), Catch::Contains("--max-connections-per-address"));
  });
}

TEST_CASE("out of file descriptors, the hub pauses accepting instead of spinning",
          "[hub][no-descriptors]") {
  // Not in the sanitizer build (tests/integration/meson.build): UBSan's vptr
  // check makes a pipe before it reads an object, and with no descriptor
  // left it reports every virtual call as "invalid vptr" and aborts.
  World world;
  world.run([&]() -> core::Co<void> {
    const int pid = world.hub.pid();
    // The hub sized itself for its limit at start; take most of it away now,
    // as other work holding descriptors would.
    const std::string limit = "prlimit --pid " + std::to_string(pid) + " --nofile=48:48";
    REQUIRE(std::system(limit.c_str()) == 0);
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 80; ++i)
      clients.push_back(std::make_unique<RawClient>(world.hub.port(), "127.0.0.5"));
    const bool said = co_await world.hub.wait_for_log("Too many open files", 10'000);
    REQUIRE(said);
    // Connections still wait to be accepted: a hub that spins burns a core.
    const uint64_t ticks_before = cpu_ticks(pid);
    (void)co_await core::sleep_for(world.loop, 2'000);
    const uint64_t ticks = cpu_ticks(pid) - ticks_before;
    INFO("hub CPU over 2 s: " << ticks << " ticks of " << ::sysconf(_SC_CLK_TCK) << " per second");
    CHECK(ticks < static_cast<uint64_t>(::sysconf(_SC_CLK_TCK)) / 2);
    size_t lines = 0;
    for (size_t at = world.hub.log().find("accept"); at != std::string::npos;
         at = world.hub.log().find("accept", at + 1))
      ++lines;
    CHECK(lines <= 2);
    // Descriptors back: the waiting clients and the operator are served.
    clients.clear();
    auto op = world.op();
    auto listing = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listing.ok());
    CHECK(listing->status == 200);
  });
}
