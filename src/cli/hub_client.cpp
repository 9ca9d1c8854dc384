#include "cli/hub_client.hpp"

#include <cstdlib>

#include "core/resolver.hpp"
#include "core/secret_file.hpp"
#include "protocol/api_error.hpp"

namespace tether::cli {

namespace {

std::string from_env(std::string given, const char* variable) {
  if (!given.empty()) return given;
  const char* value = std::getenv(variable);
  return value ? value : "";
}

}  // namespace

Result<HubConnection> resolve_connection(std::string hub_url, std::string token_file,
                                         std::string ca_file) {
  hub_url = from_env(std::move(hub_url), "TETHER_HUB_URL");
  token_file = from_env(std::move(token_file), "TETHER_TOKEN_FILE");
  ca_file = from_env(std::move(ca_file), "TETHER_CA_FILE");
  if (hub_url.empty()) {
    return make_error(Errc::kInvalid, "config",
                      "no hub: give --hub-url or set TETHER_HUB_URL (e.g. https://hub:7070)");
  }
  if (token_file.empty()) {
    return make_error(Errc::kInvalid, "config",
                      "no token: give --token-file or set TETHER_TOKEN_FILE to a file holding an "
                      "operator token (tether-hub token admin)");
  }
  TETHER_TRY(url, core::parse_url(hub_url));
  if (url->scheme != "http" && url->scheme != "https") {
    return make_error(Errc::kInvalid, "config",
                      "hub URL must be http:// or https://, got " + hub_url);
  }
  // By the resolved addresses (and again at every connect, by http_call).
  if (auto plain = core::check_plain_text_allowed(url->host, url->uses_tls(),
                                                  core::PlainTextPolicy::kLoopbackOnly);
      !plain) {
    return make_error(Errc::kInvalid, "config",
                      "refusing " + hub_url + ": " + plain.error().message);
  }
  TETHER_TRY(token, core::read_secret_file(token_file));
  return HubConnection{std::move(*url), std::move(*token), std::move(ca_file)};
}

std::string hub_error_message(const std::string& body) {
  auto error = protocol::parse_api_error(body);
  if (error && !error->message.empty()) return error->message;
  return body.empty() ? "no details" : body.substr(0, 300);
}

core::HttpCall HubClient::call(std::string method, std::string target) {
  core::HttpCall call;
  call.method = std::move(method);
  call.server = connection_.url;
  call.target = std::move(target);
  call.headers.emplace_back("Authorization", "Bearer " + connection_.token);
  call.ca_file = connection_.ca_file;
  call.connect_timeout_s = 10;
  call.read_timeout_s = 30;
  call.write_timeout_s = 30;
  return call;
}

Result<core::HttpReply> HubClient::checked(Result<core::HttpReply> reply) {
  if (!reply) return reply.error();
  if (reply->status >= 400) {
    const std::string code = reply->status == 401   ? "unauthorized"
                             : reply->status == 403 ? "forbidden"
                             : reply->status == 404 ? "not_found"
                                                    : "hub_error";
    const Errc kind = reply->status == 401 || reply->status == 403 ? Errc::kUnauthorized
                      : reply->status == 404                       ? Errc::kNotFound
                                                                   : Errc::kRefused;
    Error error = make_error(
        kind, code,
        "hub answered " + std::to_string(reply->status) + ": " + hub_error_message(reply->body));
    error.http_status = reply->status;
    return error;
  }
  return reply;
}

Result<core::HttpReply> HubClient::get(const std::string& target) {
  return checked(core::http_call(call("GET", target)));
}

Result<core::HttpReply> HubClient::post(const std::string& target, const std::string& body) {
  auto request = call("POST", target);
  request.body = body;
  return checked(core::http_call(request));
}

Result<core::HttpReply> HubClient::remove(const std::string& target) {
  return checked(core::http_call(call("DELETE", target)));
}

Result<core::HttpReply> HubClient::stream(const std::string& target,
                                          const std::string& last_event_id,
                                          core::HttpCallControl& control,
                                          std::function<bool(std::string_view)> on_data) {
  auto request = call("GET", target);
  if (!last_event_id.empty()) request.headers.emplace_back("Last-Event-ID", last_event_id);
  // The hub sends a keepalive every 15 s; a minute of silence means trouble.
  request.read_timeout_s = 60;
  std::string error_body;
  int status = 0;
  core::HttpStreamHandlers handlers;
  handlers.on_response = [&](int code, const std::map<std::string, std::string>&) {
    status = code;
    return true;
  };
  handlers.on_data = [&](std::string_view data) {
    if (status >= 400) {
      error_body.append(data);
      return error_body.size() < 65536;
    }
    return on_data(data);
  };
  auto reply = core::http_call(request, &control, &handlers);
  if (reply && reply->status >= 400) reply->body = std::move(error_body);
  return checked(std::move(reply));
}

}  // namespace tether::cli
