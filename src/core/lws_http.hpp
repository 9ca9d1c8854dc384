// lws_http: the libwebsockets calls a server makes around HTTP, as plain
// functions: a request's method, path, query and headers read out of lws;
// a small response written from inside a callback; the listener lws made
// for a port.
#pragma once

#include <sys/socket.h>

#include <string>

#include <libwebsockets.h>

#include "core/http_types.hpp"

namespace tether::core {

// Reads what the owner needs from an lws request (method, path, query, the
// headers in HttpRequest, peer). Shared by the server and its tests.
HttpRequest read_lws_request(lws* wsi, const char* path);

// A request header lws parsed (empty if absent).
std::string header_value(lws* wsi, lws_token_indexes token);
// A header lws does not know by token ("last-event-id:", with the colon).
std::string custom_header(lws* wsi, const char* name_with_colon);
// Writes a complete small JSON response from inside an lws callback.
// Returns what the callback should return (1: done, -1: close).
int write_immediate_response(lws* wsi, int status, const std::string& body);
// The peer of an accepted connection as text; IPv4-mapped IPv6 as IPv4.
std::string address_text(const sockaddr_storage& address);
// The listening socket lws made for `port`, or nullptr.
lws* find_listener(lws_context* context, int port);

}  // namespace tether::core
