#include "core/report_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace tether::core {

namespace {

// One connection being answered. Owned by libuv from uv_write until the
// write callback, which frees it; that closes the client handle.
struct Reply {
  UvHandle<uv_pipe_t> client;
  uv_write_t request{};
  std::string text;
};

void on_written(uv_write_t* request, int /*status*/) {
  // Written or failed (the reader left): either way the connection is done.
  std::unique_ptr<Reply> reply(static_cast<Reply*>(request->data));
}

// A connected unix socket to `path`, or -1 with errno set.
int connect_unix(const std::string& path) {
  sockaddr_un address{};
  if (path.size() >= sizeof address.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

}  // namespace

ReportSocket::ReportSocket(Loop& loop, std::string path, std::function<std::string()> report)
    : loop_(loop), path_(std::move(path)), report_(std::move(report)) {}

Result<std::unique_ptr<ReportSocket>> ReportSocket::open(Loop& loop, const std::string& path,
                                                         unsigned mode,
                                                         std::function<std::string()> report) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return make_error(Errc::kInvalid, "socket_path",
                      "socket path '" + path + "' is too long for a unix socket");
  }
  if (const int fd = connect_unix(path); fd >= 0) {
    ::close(fd);
    return make_error(
        Errc::kExists, "socket_in_use",
        "another process answers on '" + path + "': is a second agent using this state directory?");
  }
  ::unlink(path.c_str());  // left over from a crash, if anything

  std::unique_ptr<ReportSocket> socket(new ReportSocket(loop, path, std::move(report)));
  uv_pipe_t* server = socket->server_.get();
  if (int rc = uv_pipe_init(loop.get(), server, 0); rc != 0) {
    return make_error(Errc::kIo, "socket", std::string("uv_pipe_init: ") + uv_strerror(rc));
  }
  socket->server_.mark_initialized();
  server->data = socket.get();
  if (int rc = uv_pipe_bind(server, path.c_str()); rc != 0) {
    return make_error(Errc::kIo, "socket", "cannot bind '" + path + "': " + uv_strerror(rc));
  }
  ::chmod(path.c_str(), mode);
  if (int rc = uv_listen(socket->server_.stream(), 16, &ReportSocket::on_connection); rc != 0) {
    return make_error(Errc::kIo, "socket", "cannot listen on '" + path + "': " + uv_strerror(rc));
  }
  // The socket must not keep a finished process alive.
  uv_unref(socket->server_.base());
  return socket;
}

ReportSocket::~ReportSocket() {
  server_.close();
  ::unlink(path_.c_str());
}

void ReportSocket::on_connection(uv_stream_t* server, int status) {
  if (status != 0) return;
  auto* self = static_cast<ReportSocket*>(server->data);
  auto reply = std::make_unique<Reply>();
  if (uv_pipe_init(self->loop_.get(), reply->client.get(), 0) != 0) return;
  reply->client.mark_initialized();
  if (uv_accept(server, reply->client.stream()) != 0) return;
  reply->text = self->report_();
  uv_buf_t buffer = uv_buf_init(reply->text.data(), static_cast<unsigned>(reply->text.size()));
  reply->request.data = reply.get();
  if (uv_write(&reply->request, reply->client.stream(), &buffer, 1, &on_written) == 0) {
    (void)reply.release();  // on_written owns it now
  }
}

Result<std::string> read_report_socket(const std::string& path, int timeout_ms) {
  const int fd = connect_unix(path);
  if (fd < 0) {
    const int error_number = errno;
    const char* code = error_number == ENOENT || error_number == ECONNREFUSED ? "not_running"
                       : error_number == EACCES || error_number == EPERM      ? "permission_denied"
                                                                              : "socket";
    const Errc kind = error_number == ENOENT || error_number == ECONNREFUSED ? Errc::kState
                      : error_number == EACCES || error_number == EPERM      ? Errc::kUnauthorized
                                                                             : Errc::kIo;
    return make_error(kind, code,
                      "cannot connect to '" + path + "': " + std::strerror(error_number));
  }
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buffer[8192];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd entry{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&entry, 1, static_cast<int>(left)) <= 0) {
      ::close(fd);
      return make_error(Errc::kTimeout, "timeout",
                        "no answer on '" + path + "' within " + std::to_string(timeout_ms) + " ms");
    }
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      return make_error(Errc::kIo, "socket", "reading '" + path + "': " + std::strerror(saved));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace tether::core
