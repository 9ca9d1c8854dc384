// HubClient: the operator API calls the CLI makes (blocking; the CLI has no
// event loop). Non-2xx answers become errors carrying the hub's message.
#pragma once

#include <functional>
#include <string>

#include "core/http_client.hpp"
#include "core/result.hpp"
#include "core/url.hpp"

namespace tether::cli {

struct HubConnection {
  core::Url url;
  std::string token;
  std::string ca_file;
};

// From --hub-url / --token-file / --ca-file, falling back to TETHER_HUB_URL,
// TETHER_TOKEN_FILE and TETHER_CA_FILE. Errors say which setting is missing.
Result<HubConnection> resolve_connection(std::string hub_url, std::string token_file,
                                         std::string ca_file);

class HubClient {
 public:
  explicit HubClient(HubConnection connection) : connection_(std::move(connection)) {}

  Result<core::HttpReply> get(const std::string& target);
  Result<core::HttpReply> post(const std::string& target, const std::string& body);
  Result<core::HttpReply> remove(const std::string& target);  // DELETE

  // Streams GET `target` (an event stream: /api/v1/tasks/{id}/events,
  // /api/v1/runs/{id}/events, with their query), sending Last-Event-ID when
  // `last_event_id` is not empty. `on_data` gets raw bytes and returns false
  // to stop; the call returns when the hub ends the stream, on error, or
  // when `control` is stopped. A 4xx/5xx answer is an error with the hub's
  // message.
  Result<core::HttpReply> stream(const std::string& target, const std::string& last_event_id,
                                 core::HttpCallControl& control,
                                 std::function<bool(std::string_view)> on_data);

 private:
  core::HttpCall call(std::string method, std::string target);
  Result<core::HttpReply> checked(Result<core::HttpReply> reply);

  HubConnection connection_;
};

// The "message" of a hub error body, or the body itself.
std::string hub_error_message(const std::string& body);

}  // namespace tether::cli
