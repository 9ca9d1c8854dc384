// HubEndpoint: how the agent reaches its hub, the same for the long poll,
// the result channel and the final courier: the URL, the agent's token, the
// CA bundle for TLS, and where plain http may go (agent.conf `insecure`).
#pragma once

#include <string>
#include <utility>

#include "core/http_client.hpp"
#include "core/resolver.hpp"
#include "core/url.hpp"
#include "core/websocket_client.hpp"

namespace tether::agent {

struct HubEndpoint {
  core::Url url;
  std::string token;  // never logged
  std::string ca_file;
  core::PlainTextPolicy plain_text = core::PlainTextPolicy::kLoopbackOnly;

  // A call to `target` (path and query) on the hub, authenticated.
  core::HttpCall http_call(std::string method, std::string target) const {
    core::HttpCall call;
    call.method = std::move(method);
    call.server = url;
    call.target = std::move(target);
    call.headers.emplace_back("Authorization", "Bearer " + token);
    call.ca_file = ca_file;
    call.plain_text = plain_text;
    return call;
  }

  // The result channel at `path`: ws:// or wss:// as the hub URL is http or
  // https, authenticated.
  core::WebSocketConnectOptions websocket(std::string path) const {
    core::WebSocketConnectOptions connect;
    connect.url = url;
    connect.url.scheme = url.uses_tls() ? "wss" : "ws";
    connect.url.path = std::move(path);
    connect.headers = {{"Authorization", "Bearer " + token}};
    connect.plain_text = plain_text;
    return connect;
  }
};

}  // namespace tether::agent
