// A WebSocket peer written by hand (RFC 6455, section 5) for tests that
// need to misbehave: frames built byte by byte, a reader that sees control
// frames (pings, pongs, close) that our own WebSocket code hides.
// Blocking sockets, for a test's helper thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace tether::test {

// One frame. A client masks (RFC 6455 5.3), a server does not.
inline std::string frame(uint8_t opcode, bool fin, std::string_view payload, bool masked,
                         std::mt19937_64& random) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | opcode));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xff));
  }
  if (!masked) {
    out.append(payload);
    return out;
  }
  char mask[4];
  for (char& byte : mask)
    byte = static_cast<char>(random() & 0xff);
  out.append(mask, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    out.push_back(static_cast<char>(payload[i] ^ mask[i % 4]));
  return out;
}

struct RawFrame {
  uint8_t opcode = 0;  // 0x1 text, 0x8 close, 0x9 ping, 0xa pong, ...
  std::string payload;
};

// Reads whole frames from a connected socket, unmasking as needed.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}

  // The next frame, or nothing once the connection ended (or recv timed out).
  std::optional<RawFrame> next() {
    for (;;) {
      if (auto parsed = parse()) return parsed;
      char buffer[65536];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return std::nullopt;
      in_.append(buffer, static_cast<size_t>(n));
    }
  }

 private:
  std::optional<RawFrame> parse() {
    if (in_.size() < 2) return std::nullopt;
    const uint8_t opcode = static_cast<uint8_t>(in_[0]) & 0x0f;
    const bool masked = (static_cast<uint8_t>(in_[1]) & 0x80) != 0;
    uint64_t length = static_cast<uint8_t>(in_[1]) & 0x7f;
    size_t header = 2;
    if (length == 126) {
      if (in_.size() < 4) return std::nullopt;
      length = (static_cast<uint8_t>(in_[2]) << 8) | static_cast<uint8_t>(in_[3]);
      header = 4;
    } else if (length == 127) {
      if (in_.size() < 10) return std::nullopt;
      length = 0;
      for (int i = 0; i < 8; ++i)
        length = (length << 8) | static_cast<uint8_t>(in_[2 + i]);
      header = 10;
    }
    const size_t mask_bytes = masked ? 4 : 0;
    if (in_.size() < header + mask_bytes + length) return std::nullopt;
    RawFrame out{opcode, in_.substr(header + mask_bytes, length)};
    if (masked) {
      for (size_t i = 0; i < out.payload.size(); ++i)
        out.payload[i] = static_cast<char>(out.payload[i] ^ in_[header + i % 4]);
    }
    in_.erase(0, header + mask_bytes + length);
    return out;
  }

  int fd_;
  std::string in_;
};

// Reads frames until the other side's close frame: its code (1005 if it
// carried none), or nothing if the connection ended without one.
inline std::optional<int> close_code_from(int fd) {
  FrameReader reader(fd);
  while (auto next = reader.next()) {
    if (next->opcode != 0x8) continue;
    if (next->payload.size() < 2) return 1005;
    return (static_cast<uint8_t>(next->payload[0]) << 8) | static_cast<uint8_t>(next->payload[1]);
  }
  return std::nullopt;
}

inline std::string read_http_head(int fd) {
  std::string head;
  char c;
  while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1)
    head.push_back(c);
  return head;
}

inline std::string header_of(const std::string& head, const std::string& name) {
  std::string lower = head;
  for (char& c : lower)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto at = lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return {};
  auto start = at + 3 + name.size();
  while (start < head.size() && head[start] == ' ')
    ++start;
  return head.substr(start, head.find("\r\n", start) - start);
}

// Receive and send time out after `seconds`; no Nagle delay.
inline void set_timeouts(int fd, long seconds = 20) {
  timeval timeout{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A TCP connection to 127.0.0.1:port, or -1.
inline int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The client's opening handshake (RFC 6455 4.1) for `path`, subprotocol
// tether.v1.
inline std::string upgrade_request(const std::string& path) {
  return "GET " + path +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n\r\n";
}

}  // namespace tether::test
