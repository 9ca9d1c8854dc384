#include "core/websocket_client.hpp"

#include <libwebsockets.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "core/log.hpp"
#include "core/resolver.hpp"
#include "core/web_server.hpp"

namespace tether::core {

namespace {

std::unordered_set<WebSocketClient*>& live_clients() {
  static std::unordered_set<WebSocketClient*> clients;
  return clients;
}

int client_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* client = static_cast<WebSocketClient*>(lws_context_user(lws_get_context(wsi)));
  if (!live_clients().count(client)) return 0;
  return client->handle_lws_callback(wsi, reason, user, in, len);
}

}  // namespace

// One connect() in flight: the handshake result lands here, then the awaiting
// coroutine resumes on a later loop turn.
struct WebSocketClient::Pending {
  WebSocketConnectOptions options;
  std::shared_ptr<WebSocketConnection> connection;
  std::optional<Result<std::shared_ptr<WebSocketConnection>>> outcome;
  std::coroutine_handle<> awaiting;
  lws* wsi = nullptr;
};

struct WebSocketClient::LwsTables {
  std::string protocol_name = "tether.v1";
  lws_protocols protocols[2]{};
  lws_retry_bo_t idle_policy{};
};

WebSocketClient::WebSocketClient(Loop& loop, WebSocketClientOptions options)
    : loop_(loop), options_(std::move(options)) {
  live_clients().insert(this);
}

WebSocketClient::~WebSocketClient() {
  *alive_ = false;
  context_.reset();  // connections close now; lws calls back while we are still registered
  live_clients().erase(this);
}

Result<std::unique_ptr<WebSocketClient>> WebSocketClient::create(Loop& loop,
                                                                 WebSocketClientOptions options) {
  auto client = std::make_unique<WebSocketClient>(loop, std::move(options));
  if (auto created = client->create_context(); !created) return created.error();
  return client;
}

Result<void> WebSocketClient::create_context() {
  configure_lws_logging();
  tables_ = std::make_unique<LwsTables>();
  lws_protocols& protocol = tables_->protocols[0];
  protocol.name = tables_->protocol_name.c_str();
  protocol.callback = &client_callback;
  protocol.rx_buffer_size = 64 * 1024;
  tables_->idle_policy.secs_since_valid_ping = options_.ping_after_idle_s;
  tables_->idle_policy.secs_since_valid_hangup = options_.dead_after_s;

  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = tables_->protocols;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                 LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_VALIDATE_UTF8;
  info.user = this;
  info.client_ssl_ca_filepath = options_.ca_file.empty() ? nullptr : options_.ca_file.c_str();
  info.ka_time = 30;
  info.ka_probes = 3;
  info.ka_interval = 10;
  info.timeout_secs = options_.handshake_timeout_s;
  context_ = std::make_unique<LwsContextOwner>(loop_);
  if (!context_->create(info)) {
    return make_error(Errc::kIo, "ws_client",
                      options_.ca_file.empty()
                          ? "cannot create the libwebsockets client context"
                          : "cannot create the WebSocket client (is the CA file '" +
                                options_.ca_file + "' readable PEM?)");
  }
  return {};
}

namespace {

// libwebsockets' words for a failed connect, in ours: what failed, and what
// to check. (lws 4.1 prints an OpenSSL error as "connect SSL err 1:
// error:00000001:lib(0)::reason(1)", which names nothing.)
std::string describe_connect_error(const std::string& lws_text, const Url& url,
                                   const std::string& ca_file) {
  const std::string check_ca = ca_file.empty()
                                   ? "give the CA that issued it (ca_file)"
                                   : "check that " + ca_file + " holds the CA that issued it";
  if (lws_text.rfind("connect SSL err", 0) == 0) {
    return "the TLS handshake with " + url.host + " failed: its certificate is not trusted (" +
           check_ca + "), or the port does not speak TLS";
  }
  constexpr std::string_view kCertificate = "X509_V_ERR = ";
  if (const size_t at = lws_text.find(kCertificate); at != std::string::npos) {
    const long code = std::strtol(lws_text.c_str() + at + kCertificate.size(), nullptr, 10);
    return "the hub's TLS certificate is not trusted: " +
           std::string(X509_verify_cert_error_string(code)) + " (" + check_ca + ")";
  }
  constexpr std::string_view kSyscall = "connect SYSCALL ";
  if (lws_text.rfind(kSyscall, 0) == 0) {
    const int error_number = std::atoi(lws_text.c_str() + kSyscall.size());
    return "the connection failed during the TLS handshake: " +
           std::string(error_number ? std::strerror(error_number) : "closed by the server");
  }
  if (lws_text.empty()) return "the connection failed (no reason given)";
  std::string text = lws_text;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  return text;
}

}  // namespace

namespace {

class ConnectAwaiter {
 public:
  ConnectAwaiter(std::shared_ptr<void> keep, std::coroutine_handle<>* slot, bool ready)
      : keep_(std::move(keep)), slot_(slot), ready_(ready) {}
  bool await_ready() const noexcept { return ready_; }
  void await_suspend(std::coroutine_handle<> awaiting) { *slot_ = awaiting; }
  void await_resume() const noexcept {}

 private:
  std::shared_ptr<void> keep_;
  std::coroutine_handle<>* slot_;
  bool ready_;
};

}  // namespace

Co<Result<std::shared_ptr<WebSocketConnection>>> WebSocketClient::connect(
    WebSocketConnectOptions options, CancellationToken token) {
  if (token.cancelled()) co_return cancelled_error();
  const Url url = options.url;
  auto resolved = co_await resolve(loop_, url.host, token);
  if (!resolved) {
    if (resolved.is_cancelled()) co_return cancelled_error();
    co_return make_error(Errc::kUnreachable, "ws_connect", resolved.error().message);
  }
  auto addresses =
      permitted_addresses(url.host, url.uses_tls(), options.plain_text, std::move(*resolved));
  if (!addresses) co_return make_error(Errc::kUnreachable, "ws_connect", addresses.error().message);
  // Each address in turn: a name whose first address has nobody listening
  // (::1 for "localhost" on a stock Debian, against a server on 127.0.0.1)
  // must still connect.
  std::string failures;
  for (const std::string& address : *addresses) {
    auto connected = co_await connect_address(options, address, token);
    if (connected || connected.is_cancelled() || connected.error().kind == Errc::kRefused) {
      if (connected && !failures.empty()) {
        log_info("websocket",
                 url.origin() + ": connected through " + address + " after " + failures);
      }
      co_return connected;
    }
    failures +=
        (failures.empty() ? "" : "; ") + address + " failed (" + connected.error().message + ")";
    if (&address != &addresses->back()) {
      log_info("websocket", url.origin() + ": " + address + " failed (" +
                                connected.error().message + "); trying the next address");
    }
  }
  co_return make_error(Errc::kUnreachable, "ws_connect",
                       "cannot connect to " + url.origin() + ": " + failures);
}

Co<Result<std::shared_ptr<WebSocketConnection>>> WebSocketClient::connect_address(
    const WebSocketConnectOptions& options, const std::string& address, CancellationToken token) {
  if (token.cancelled()) co_return cancelled_error();
  auto pending = std::make_shared<Pending>();
  pending->options = options;
  const Url& url = pending->options.url;
  HttpRequest upgrade;
  upgrade.method = "GET";
  upgrade.path = url.path;
  pending->connection = std::make_shared<WebSocketConnection>(loop_, alive_, upgrade,
                                                              pending->options.max_message_bytes);

  // The name goes in Host and is what TLS verifies (lws takes the server
  // name for SNI and the certificate check from `host`); `address` is only
  // where the socket connects.
  const std::string host_header =
      (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) + ":" +
      std::to_string(url.port);
  lws_client_connect_info info{};
  info.context = context_->get();
  info.address = address.c_str();
  info.port = url.port;
  info.path = url.path.c_str();
  info.host = host_header.c_str();
  info.origin = host_header.c_str();
  info.protocol = pending->options.protocol.c_str();
  info.ssl_connection = url.uses_tls() ? LCCSCF_USE_SSL : 0;
  info.retry_and_idle_policy = &tables_->idle_policy;
  info.pwsi = &pending->wsi;
  // Callbacks find the Pending through the wsi's opaque pointer; lws may
  // already report a failure from inside lws_client_connect_via_info.
  info.opaque_user_data = pending.get();
  pending_[pending.get()] = pending;
  if (!lws_client_connect_via_info(&info) && !pending->outcome) {
    pending_.erase(pending.get());
    co_return make_error(Errc::kUnreachable, "ws_connect",
                         "cannot start a connection to " + url.origin());
  }

  Loop::KeepAlive keep_alive(loop_);  // the handshake has no handle of ours
  CancellationRegistration on_cancel(token, [this, pending] {
    if (pending->outcome) return;
    if (pending->wsi) {
      lws_set_opaque_user_data(pending->wsi, nullptr);
      lws_set_timeout(pending->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    finish_pending(pending.get(), cancelled_error());
  });
  ConnectAwaiter wait(pending, &pending->awaiting, pending->outcome.has_value());
  co_await wait;
  co_return std::move(*pending->outcome);
}

void WebSocketClient::finish_pending(Pending* raw,
                                     Result<std::shared_ptr<WebSocketConnection>> outcome) {
  auto it = pending_.find(raw);
  if (it == pending_.end()) return;
  auto pending = it->second;
  pending_.erase(it);
  if (pending->outcome) return;
  pending->outcome = std::move(outcome);
  if (auto awaiting = std::exchange(pending->awaiting, {}))
    loop_.defer([awaiting] { awaiting.resume(); });
}

int WebSocketClient::append_headers(lws* wsi, const Pending& pending, unsigned char** p,
                                    size_t room) {
  unsigned char* end = *p + room;
  for (const auto& [name, value] : pending.options.headers) {
    std::string field = name + ":";
    for (auto& c : field)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(field.c_str()),
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), p, end)) {
      return -1;
    }
  }
  return 0;
}

void WebSocketClient::fail_connect(lws* wsi, Pending* pending, const char* lws_reason) {
  lws_set_opaque_user_data(wsi, nullptr);
  const std::string why = describe_connect_error(lws_reason ? std::string(lws_reason) : "",
                                                 pending->options.url, options_.ca_file);
  const unsigned int status = lws_http_client_http_response(wsi);
  if (status < 300) {
    finish_pending(pending, make_error(Errc::kUnreachable, "ws_connect", why));
    return;
  }
  // The hub answered the handshake with an HTTP error (401, 403, 503...).
  Error refused = make_error(Errc::kRefused, "ws_refused", std::to_string(status) + ": " + why);
  refused.http_status = static_cast<int>(status);
  finish_pending(pending, std::move(refused));
}

int WebSocketClient::handle_lws_callback(lws* wsi, int reason_number, void* user, void* in,
                                         size_t len) {
  const auto reason = static_cast<lws_callback_reasons>(reason_number);
  auto* pending = static_cast<Pending*>(lws_get_opaque_user_data(wsi));
  if (pending && !pending_.count(pending)) pending = nullptr;
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
      return pending ? append_headers(wsi, *pending, static_cast<unsigned char**>(in), len) : 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED: {
      if (!pending) return -1;  // cancelled meanwhile
      lws_set_opaque_user_data(wsi, nullptr);
      auto connection = pending->connection;
      connection->attach(wsi);
      connections_[wsi] = connection;
      finish_pending(pending, connection);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      if (pending) fail_connect(wsi, pending, static_cast<const char*>(in));
      return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      auto it = connections_.find(wsi);
      return it == connections_.end() ? -1 : it->second->on_receive_fragment(wsi, in, len);
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      auto it = connections_.find(wsi);
      return it == connections_.end() ? 0 : it->second->on_writable(wsi);
    }
    case LWS_CALLBACK_TIMER: {
      auto it = connections_.find(wsi);
      return it == connections_.end() ? 0 : it->second->on_timer();
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      auto it = connections_.find(wsi);
      if (it != connections_.end()) it->second->on_peer_close(in, len);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED: {
      auto it = connections_.find(wsi);
      if (it != connections_.end()) {
        auto connection = it->second;
        connections_.erase(it);
        connection->on_lws_closed();
      }
      return 0;
    }
    case LWS_CALLBACK_WSI_DESTROY: {
      // A connection that died before ESTABLISHED without an error callback.
      if (pending)
        finish_pending(pending, make_error(Errc::kUnreachable, "ws_connect",
                                           "connection closed during the handshake"));
      return 0;
    }
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

}  // namespace tether::core
