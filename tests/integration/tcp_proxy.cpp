#include "tcp_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tether::test {

namespace {

constexpr size_t kBufferLimit = 256 * 1024;
constexpr size_t kMaxRequestHead = 64 * 1024;

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Closes with SO_LINGER 0: the kernel sends RST instead of FIN.
void reset(int fd) {
  if (fd < 0) return;
  linger option{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option);
  ::close(fd);
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  set_nonblocking(fd);
  return fd;
}

bool is_websocket_upgrade(std::string head) {
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return head.find("\nupgrade: websocket") != std::string::npos;
}

}  // namespace

// One proxied connection. Until the client's request head is complete there
// is no upstream: the head decides whether the connection is refused.
struct TcpProxy::Connection {
  int client = -1;
  int upstream = -1;
  std::string head;         // the request head, while it is read
  std::string to_upstream;  // bytes read from the client, not yet written
  std::string to_client;    // bytes read from upstream, not yet written
  bool client_eof = false;
  bool upstream_eof = false;
  bool done = false;
  bool held = false;  // a WebSocket upgrade counted as held (set_hold_websocket)

  ~Connection() {
    if (client >= 0) ::close(client);
    if (upstream >= 0) ::close(upstream);
  }
};

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int yes = 1;
  ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 64) != 0) {
    throw std::runtime_error("TcpProxy: cannot listen on 127.0.0.1");
  }
  socklen_t length = sizeof address;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  set_nonblocking(listener_);
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::runtime_error("TcpProxy: pipe2 failed");
  }
  thread_ = std::thread([this] { run(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  wake();
  thread_.join();
  ::close(listener_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

void TcpProxy::wake() {
  const char byte = 1;
  (void)!::write(wake_pipe_[1], &byte, 1);
}

void TcpProxy::reset_all() {
  reset_requested_ = true;
  wake();
}

void TcpProxy::set_blackhole(bool on) {
  blackhole_ = on;
  wake();
}

void TcpProxy::set_refuse_websocket(bool on) {
  refuse_websocket_ = on;
  wake();
}

void TcpProxy::set_hold_websocket(bool on) {
  hold_websocket_ = on;
  wake();
}

void TcpProxy::run() {
  std::vector<std::unique_ptr<Connection>> open;
  while (!stop_) {
    if (reset_requested_.exchange(false)) {
      for (auto& connection : open) {
        reset(std::exchange(connection->client, -1));
        reset(std::exchange(connection->upstream, -1));
      }
      open.clear();
    }
    const bool stalled = blackhole_;
    std::vector<pollfd> fds;
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    fds.push_back({listener_, POLLIN, 0});
    for (auto& c : open) {
      short client_events = 0;
      short upstream_events = 0;
      if (!stalled) {
        if (!c->client_eof && c->to_upstream.size() < kBufferLimit) client_events |= POLLIN;
        if (!c->to_client.empty()) client_events |= POLLOUT;
        if (c->upstream >= 0) {
          if (!c->upstream_eof && c->to_client.size() < kBufferLimit) upstream_events |= POLLIN;
          if (!c->to_upstream.empty()) upstream_events |= POLLOUT;
        }
      }
      // poll ignores fd -1: a stalled or finished side is not watched at all,
      // or its POLLHUP would wake the loop over and over.
      const bool watch_client = !stalled && (!c->client_eof || !c->to_client.empty());
      const bool watch_upstream = !stalled && (!c->upstream_eof || !c->to_upstream.empty());
      fds.push_back({watch_client ? c->client : -1, client_events, 0});
      fds.push_back({watch_upstream ? c->upstream : -1, upstream_events, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;

    if (fds[0].revents) {
      char drain[64];
      while (::read(wake_pipe_[0], drain, sizeof drain) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;
        ++connections_;
        auto connection = std::make_unique<Connection>();
        connection->client = client;
        open.push_back(std::move(connection));
      }
    }
    if (stalled) continue;

    char buffer[64 * 1024];
    for (size_t i = 0; i < open.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
      Connection& c = *open[i];
      const short client_revents = fds[2 + 2 * i].revents;
      const short upstream_revents = fds[2 + 2 * i + 1].revents;
      // Client to upstream.
      if (client_revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::read(c.client, buffer, sizeof buffer);
        if (n > 0) {
          if (c.upstream >= 0) {
            c.to_upstream.append(buffer, static_cast<size_t>(n));
          } else {
            c.head.append(buffer, static_cast<size_t>(n));
          }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          c.client_eof = true;
          if (n < 0) c.done = true;
        }
      }
      if (c.upstream < 0 && !c.done) {
        const bool complete = c.head.find("\r\n\r\n") != std::string::npos;
        if (complete || c.client_eof || c.head.size() > kMaxRequestHead) {
          if (refuse_websocket_ && is_websocket_upgrade(c.head)) {
            ++refused_;
            static const char kRefusal[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: "
                "close\r\n\r\n";
            (void)!::write(c.client, kRefusal, sizeof kRefusal - 1);
            c.done = true;
            continue;
          }
          if (hold_websocket_ && is_websocket_upgrade(c.head)) {
            // Looked at again on every pass: forwarded once the hold ends.
            if (!c.held) ++held_;
            c.held = true;
            continue;
          }
          c.upstream = connect_to(target_port_);
          if (c.upstream < 0) {
            reset(std::exchange(c.client, -1));  // the hub is down: refuse, as a dead port does
            c.done = true;
            continue;
          }
          c.to_upstream = std::move(c.head);
          c.head.clear();
        }
      }
      if (c.upstream >= 0 && (upstream_revents & (POLLIN | POLLHUP | POLLERR))) {
        const ssize_t n = ::read(c.upstream, buffer, sizeof buffer);
        if (n > 0) {
          c.to_client.append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          c.upstream_eof = true;
          if (n < 0) {
            // The hub reset the connection (or died): pass the reset on.
            reset(std::exchange(c.client, -1));
            c.done = true;
            continue;
          }
        }
      }
      if (!c.to_upstream.empty() && c.upstream >= 0) {
        const ssize_t n =
            ::send(c.upstream, c.to_upstream.data(), c.to_upstream.size(), MSG_NOSIGNAL);
        if (n > 0)
          c.to_upstream.erase(0, static_cast<size_t>(n));
        else if (errno != EAGAIN && errno != EINTR)
          c.done = true;
      }
      if (!c.to_client.empty()) {
        const ssize_t n = ::send(c.client, c.to_client.data(), c.to_client.size(), MSG_NOSIGNAL);
        if (n > 0)
          c.to_client.erase(0, static_cast<size_t>(n));
        else if (errno != EAGAIN && errno != EINTR)
          c.done = true;
      }
      // Pass a half close on once everything before it has gone through.
      if (c.client_eof && c.to_upstream.empty() && c.upstream >= 0) ::shutdown(c.upstream, SHUT_WR);
      if (c.upstream_eof && c.to_client.empty()) {
        ::shutdown(c.client, SHUT_WR);
        if (c.client_eof) c.done = true;
      }
      if (c.client_eof && c.upstream_eof && c.to_client.empty()) c.done = true;
    }
    std::erase_if(open, [](const std::unique_ptr<Connection>& c) { return c->done; });
  }
}

}  // namespace tether::test
