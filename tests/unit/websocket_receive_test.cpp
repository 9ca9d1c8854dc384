// The receive path of our WebSocket client and server against a peer that
// writes frames by hand (RFC 6455, section 5): random fragmentation, pings
// between fragments, random TCP write boundaries, and messages around and
// over the 1 MiB limit. Seeded, so a failure replays. Run under ASan by
// scripts/test: memory errors in the receive path are what this hunts.
//
// Expected: every message below the limit arrives whole and in order; the
// first one over it closes the connection with 1009, and nothing after it
// is delivered.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <optional>
#include <random>
#include <thread>

#include "core/notification.hpp"
#include "core/run.hpp"
#include "core/web_server.hpp"
#include "core/websocket_client.hpp"
#include "protocol/base64.hpp"
#include "raw_websocket.hpp"

using namespace tether;
using namespace tether::core;
using namespace tether::test;

namespace {

constexpr size_t kLimit = 1 << 20;
constexpr const char* kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string accept_key(const std::string& key) {
  const std::string joined = key + kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(joined.data()), joined.size(), digest);
  return protocol::base64_encode(
      std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

struct Script {
  std::vector<std::string> messages;  // in order; text only
  std::string bytes;                  // every frame, as the peer writes them
  std::vector<std::string> expected;  // what the receiver must deliver
  bool over_limit = false;            // the receiver must close with 1009
};

// Messages of random size, some over the limit, fragmented at random, with
// pings between fragments.
Script make_script(std::mt19937_64& random, bool masked) {
  Script script;
  const int count = 1 + static_cast<int>(random() % 5);
  for (int m = 0; m < count; ++m) {
    size_t size;
    switch (random() % 4) {
      case 0:
        size = random() % 200;
        break;
      case 1:
        size = random() % 300'000;
        break;
      case 2:
        size = kLimit - 64 + random() % 64;  // just under
        break;
      default:
        size = kLimit + 1 + random() % 300'000;  // over (1.13 MB crashed the agent)
        break;
    }
    std::string message(size, '\0');
    for (char& c : message)
      c = static_cast<char>('a' + random() % 26);
    script.messages.push_back(message);
    if (!script.over_limit) {
      if (size > kLimit) {
        script.over_limit = true;
      } else {
        script.expected.push_back(message);
      }
    }
    // Fragments: 1 to 6 frames of random length.
    const int pieces = 1 + static_cast<int>(random() % 6);
    size_t at = 0;
    for (int p = 0; p < pieces; ++p) {
      const bool last = p == pieces - 1;
      const size_t length = last ? size - at : std::min(size - at, random() % (size / pieces + 1));
      script.bytes += frame(p == 0 ? 0x1 : 0x0, last, std::string_view(message).substr(at, length),
                            masked, random);
      at += length;
      if (!last && random() % 2 == 0) script.bytes += frame(0x9, true, "ping", masked, random);
    }
  }
  return script;
}

// Writes `bytes` in random pieces (1 byte to 256 KiB), so frame headers and
// payloads straddle reads on the other side.
void write_in_pieces(int fd, const std::string& bytes, std::mt19937_64& random) {
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t piece = std::min<size_t>(bytes.size() - at, 1 + random() % (256 * 1024));
    const ssize_t n = ::send(fd, bytes.data() + at, piece, MSG_NOSIGNAL);
    if (n <= 0) return;  // the receiver closed (after a refusal): fine
    at += static_cast<size_t>(n);
  }
}

struct Received {
  std::vector<std::string> messages;
  int close_code = 0;
};

// Collects messages until the connection closes.
Co<void> collect(std::shared_ptr<WebSocketConnection> socket, Received& out) {
  for (;;) {
    auto message = co_await socket->receive();
    if (!message) break;
    out.messages.push_back(std::move(*message));
  }
  out.close_code = socket->close_code();
}

void check_outcome(const Script& script, const Received& received, std::optional<int> peer_saw) {
  REQUIRE(received.messages.size() == script.expected.size());
  for (size_t i = 0; i < script.expected.size(); ++i)
    CHECK(received.messages[i] == script.expected[i]);
  if (script.over_limit) {
    CHECK(received.close_code == kCloseMessageTooBig);
    CHECK(peer_saw == kCloseMessageTooBig);
  }
}

}  // namespace

TEST_CASE("WebSocket client receive path: hand-made frames around the size limit", "[web][fuzz]") {
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 random(seed);
    const Script script = make_script(random, false);

    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener, 1) == 0);
    socklen_t length = sizeof address;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    const int port = ntohs(address.sin_port);

    std::optional<int> peer_saw;
    std::thread peer([&, peer_random = std::mt19937_64(seed * 7919)]() mutable {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      set_timeouts(fd);
      const std::string head = read_http_head(fd);
      const std::string response =
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: " +
          accept_key(header_of(head, "sec-websocket-key")) +
          "\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n";
      write_in_pieces(fd, response, peer_random);
      write_in_pieces(fd, script.bytes, peer_random);
      if (!script.over_limit) {
        std::mt19937_64 unused(0);
        write_in_pieces(fd, frame(0x8, true, std::string("\x03\xe8", 2), false, unused),
                        peer_random);
      }
      peer_saw = close_code_from(fd);
      ::close(fd);
    });

    Loop loop;
    Received received;
    {
      auto client = WebSocketClient::create(loop, {});
      REQUIRE(client.ok());
      auto body = [&]() -> Co<void> {
        WebSocketConnectOptions options;
        options.url = *parse_url("ws://127.0.0.1:" + std::to_string(port) + "/channel");
        auto connected = co_await (*client)->connect(options);
        REQUIRE(connected.ok());
        co_await collect(*connected, received);
        client->reset();
      };
      run_to_completion(loop, body());
    }
    peer.join();
    ::close(listener);
    check_outcome(script, received, peer_saw);
  }
}

TEST_CASE("WebSocket server receive path: hand-made frames around the size limit", "[web][fuzz]") {
  for (uint64_t seed = 101; seed <= 124; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 random(seed);
    const Script script = make_script(random, true);

    Loop loop;
    Received received;
    std::shared_ptr<WebSocketConnection> server_side;
    WebServer::Handlers handlers;
    handlers.on_request = [](std::shared_ptr<HttpExchange> exchange) {
      exchange->respond(json_response(404, "{}"));
    };
    handlers.on_upgrade = [](const HttpRequest&) { return UpgradeDecision{}; };
    std::unique_ptr<WebServer> server;
    std::optional<int> peer_saw;
    std::thread peer;
    auto body = [&]() -> Co<void> {
      Notification adopted(loop);
      handlers.on_websocket = [&](std::shared_ptr<WebSocketConnection> socket) {
        server_side = socket;
        adopted.notify_all();
      };
      auto started = WebServer::start(loop, {}, handlers);
      REQUIRE(started.ok());
      server = std::move(*started);
      const int port = server->port();
      peer = std::thread([&, port, peer_random = std::mt19937_64(seed * 104729)]() mutable {
        const int fd = connect_loopback(port);
        if (fd < 0) return;
        set_timeouts(fd);
        const std::string request = upgrade_request("/channel");
        write_in_pieces(fd, request, peer_random);
        (void)read_http_head(fd);
        write_in_pieces(fd, script.bytes, peer_random);
        if (!script.over_limit) {
          write_in_pieces(fd, frame(0x8, true, std::string("\x03\xe8", 2), true, peer_random),
                          peer_random);
        }
        peer_saw = close_code_from(fd);
        ::close(fd);
      });
      if (!server_side) {
        const bool notified = co_await adopted.wait(20'000);
        (void)notified;
      }
      REQUIRE(server_side);
      co_await collect(server_side, received);
      server.reset();
    };
    run_to_completion(loop, body());
    peer.join();
    check_outcome(script, received, peer_saw);
  }
}
