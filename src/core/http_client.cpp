#include "core/http_client.hpp"

#include <httplib.h>
#include <openssl/x509.h>

#include <cctype>

#include "core/log.hpp"
#include "core/offload.hpp"
#include "core/resolver.hpp"

namespace tether::core {

// Connects a live httplib client to a control for the duration of a call.
struct HttpCallAttachment {
  HttpCallAttachment(HttpCallControl* control, httplib::Client& client) : control_(control) {
    if (!control_) return;
    std::lock_guard lock(control_->mutex_);
    control_->stop_client_ = [&client] { client.stop(); };
  }
  ~HttpCallAttachment() {
    if (!control_) return;
    std::lock_guard lock(control_->mutex_);
    control_->stop_client_ = nullptr;
  }
  HttpCallControl* control_;
};

void HttpCallControl::stop() {
  stopped_ = true;
  std::lock_guard lock(mutex_);
  if (stop_client_) stop_client_();
}

namespace {

std::string lowercase(std::string text) {
  for (auto& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// What failed, with what, and what to check, in words: httplib's own
// names ("SSLServerVerification", "Read") say none of that.
std::string describe_failure(httplib::Error error, const HttpCall& call, long verify_result) {
  const std::string host = call.server.host;
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect: nothing answers there (is the hub running, and are the host and "
             "port right?)";
    case httplib::Error::ConnectionTimeout:
      return "no connection within " + std::to_string(call.connect_timeout_s) +
             " s (a firewall dropping packets, or the wrong address?)";
    case httplib::Error::Read:
      return "the connection closed or timed out (" + std::to_string(call.read_timeout_s) +
             " s) before the answer was complete (the hub or a proxy in between ended it)";
    case httplib::Error::Write:
      return "the connection closed while the request was sent";
    case httplib::Error::SSLConnection:
      return "the TLS handshake failed: does " + host +
             " speak https on this port (a plain "
             "http hub answers an https URL with this), and does it accept TLS 1.2 or later?";
    case httplib::Error::SSLLoadingCerts:
      return "cannot load the CA certificates" +
             (call.ca_file.empty() ? std::string(" of the system")
                                   : " in " + call.ca_file + " (is it a PEM file?)");
    case httplib::Error::SSLServerVerification: {
      std::string why = verify_result != X509_V_OK ? X509_verify_cert_error_string(verify_result)
                                                   : "it is not issued for the name " + host;
      return "the hub's TLS certificate is not trusted: " + why + ". Check the URL's host, and " +
             (call.ca_file.empty() ? std::string("give the CA that issued it (ca_file, --ca-file)")
                                   : "that " + call.ca_file + " holds the CA that issued it");
    }
    case httplib::Error::Canceled:
      return "cancelled";
    default:
      return httplib::to_string(error);
  }
}

}  // namespace

namespace {

// One exchange with the server at `address`; `connect_failed` is set when
// no connection was made (so another address may be tried).
Result<HttpReply> call_address(const HttpCall& call, const std::string& address,
                               HttpCallControl* control, const HttpStreamHandlers* stream,
                               bool& connect_failed) {
  connect_failed = false;
  httplib::Client client(call.server.origin());
  // The socket goes to `address`; Host, SNI and the certificate check keep
  // the name.
  client.set_hostname_addr_map({{call.server.host, address}});
  client.set_connection_timeout(call.connect_timeout_s, 0);
  client.set_read_timeout(call.read_timeout_s, 0);
  client.set_write_timeout(call.write_timeout_s, 0);
  client.set_keep_alive(false);
  if (call.server.uses_tls()) {
    client.enable_server_certificate_verification(true);
    if (!call.ca_file.empty()) client.set_ca_cert_path(call.ca_file.c_str());
  }

  httplib::Request request;
  request.method = call.method;
  request.path = call.target;
  for (const auto& [name, value] : call.headers)
    request.headers.emplace(name, value);
  if (!call.body.empty() || call.method == "PUT" || call.method == "POST") {
    request.body = call.body;
    request.headers.emplace("Content-Type", call.content_type);
  }
  HttpReply reply;
  if (stream) {
    request.response_handler = [&](const httplib::Response& response) {
      reply.status = response.status;
      for (const auto& [name, value] : response.headers)
        reply.headers[lowercase(name)] = value;
      return stream->on_response ? stream->on_response(response.status, reply.headers) : true;
    };
    request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      return stream->on_data(std::string_view(data, length));
    };
  }

  HttpCallAttachment attachment(control, client);
  if (control && control->stopped()) return make_error(Errc::kIo, "http_io", "request cancelled");
  auto result = client.send(request);
  if (!result) {
    const auto error = result.error();
    connect_failed =
        error == httplib::Error::Connection || error == httplib::Error::ConnectionTimeout;
    const bool tls_failure = error == httplib::Error::SSLConnection ||
                             error == httplib::Error::SSLServerVerification ||
                             error == httplib::Error::SSLLoadingCerts;
    // A stream the receiver chose to end is not a failure.
    if (stream && error == httplib::Error::Canceled && reply.status != 0) return reply;
    const bool unreachable = connect_failed || tls_failure;
    return make_error(unreachable ? Errc::kUnreachable : Errc::kIo,
                      unreachable ? "http_connect" : "http_io",
                      describe_failure(error, call, client.get_openssl_verify_result()));
  }
  reply.status = result->status;
  if (!stream) {
    reply.body = std::move(result->body);
    for (const auto& [name, value] : result->headers)
      reply.headers[lowercase(name)] = value;
  }
  return reply;
}

}  // namespace

Result<HttpReply> http_call(const HttpCall& call, HttpCallControl* control,
                            const HttpStreamHandlers* stream) {
  const std::string what = call.method + " " + call.server.origin() + call.target;
  auto resolved = resolve_host(call.server.host);
  if (!resolved)
    return make_error(Errc::kUnreachable, "http_connect", what + ": " + resolved.error().message);
  auto addresses = permitted_addresses(call.server.host, call.server.uses_tls(), call.plain_text,
                                       std::move(*resolved));
  if (!addresses) return with_context(addresses.error(), what + ": " + addresses.error().message);
  // Each address in turn, as long as none was reached: after a connection
  // the request may have had effects, and is not sent again elsewhere.
  std::string failures;
  for (const std::string& address : *addresses) {
    bool connect_failed = false;
    auto reply = call_address(call, address, control, stream, connect_failed);
    if (reply || !connect_failed || (control && control->stopped())) {
      if (!reply) {
        return with_context(reply.error(), what + ": " + (failures.empty() ? "" : failures + "; ") +
                                               (addresses->size() > 1 ? address + ": " : "") +
                                               reply.error().message);
      }
      if (!failures.empty()) {
        log_info("http",
                 call.server.origin() + ": reached through " + address + " after " + failures);
      }
      return reply;
    }
    failures +=
        (failures.empty() ? "" : "; ") + address + " failed (" + reply.error().message + ")";
  }
  return make_error(Errc::kUnreachable, "http_connect", what + ": " + failures);
}

Co<Result<HttpReply>> http_request(Loop& loop, ThreadPool& pool, HttpCall call,
                                   CancellationToken token) {
  auto control = std::make_shared<HttpCallControl>();
  CancellationRegistration stop_on_cancel(token, [control] { control->stop(); });
  std::function<Result<HttpReply>()> work = [control, call = std::move(call)] {
    return http_call(call, control.get());
  };
  co_return co_await run_off_loop<HttpReply>(loop, pool, std::move(work), token);
}

}  // namespace tether::core
