#include "core/lws_http.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <libwebsockets/lws-eventlib-exports.h>  // wsi_from_fd: finding our listener
#include <netinet/in.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/log.hpp"

namespace tether::core {

namespace {

std::string method_of(lws* wsi) {
  static const std::pair<lws_token_indexes, const char*> kMethods[] = {
      {WSI_TOKEN_GET_URI, "GET"},     {WSI_TOKEN_POST_URI, "POST"},
      {WSI_TOKEN_PUT_URI, "PUT"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
      {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
      {WSI_TOKEN_HEAD_URI, "HEAD"},
  };
  for (const auto& [token, name] : kMethods) {
    if (lws_hdr_total_length(wsi, token) > 0) return name;
  }
  return "UNKNOWN";
}

}  // namespace

std::string header_value(lws* wsi, lws_token_indexes token) {
  const int length = lws_hdr_total_length(wsi, token);
  if (length <= 0) return {};
  std::string value(static_cast<size_t>(length) + 1, '\0');
  const int copied = lws_hdr_copy(wsi, value.data(), length + 1, token);
  value.resize(copied > 0 ? static_cast<size_t>(copied) : 0);
  return value;
}

std::string custom_header(lws* wsi, const char* name_with_colon) {
  const int name_length = static_cast<int>(std::strlen(name_with_colon));
  const int length = lws_hdr_custom_length(wsi, name_with_colon, name_length);
  if (length <= 0) return {};
  std::string value(static_cast<size_t>(length) + 1, '\0');
  const int copied =
      lws_hdr_custom_copy(wsi, value.data(), length + 1, name_with_colon, name_length);
  value.resize(copied > 0 ? static_cast<size_t>(copied) : 0);
  return value;
}

// Writes a complete small response from inside an lws callback.
int write_immediate_response(lws* wsi, int status, const std::string& body) {
  std::string buffer(LWS_PRE + 1024 + body.size(), '\0');
  auto* start = reinterpret_cast<unsigned char*>(buffer.data() + LWS_PRE);
  unsigned char* p = start;
  unsigned char* end = start + 1024;
  if (lws_add_http_common_headers(wsi, static_cast<unsigned int>(status), "application/json",
                                  body.size(), &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end)) {
    return -1;
  }
  std::memcpy(start, body.data(), body.size());
  if (lws_write(wsi, start, body.size(), LWS_WRITE_HTTP_FINAL) < static_cast<int>(body.size())) {
    return -1;
  }
  return 1;
}

// The peer of an accepted connection as text; IPv4-mapped IPv6 as IPv4, so
// one client counts once whichever way it connected.
std::string address_text(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    return ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text) ? text : "?";
  }
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      in_addr v4{};
      std::memcpy(&v4, &v6.sin6_addr.s6_addr[12], sizeof v4);
      return ::inet_ntop(AF_INET, &v4, text, sizeof text) ? text : "?";
    }
    return ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text) ? text : "?";
  }
  return "?";
}

// The listening socket lws made for `port`: a socket of ours that accepts
// connections on that port and that lws knows.
lws* find_listener(lws_context* context, int port) {
  DIR* fds = ::opendir("/proc/self/fd");
  if (!fds) return nullptr;
  lws* found = nullptr;
  while (dirent* entry = ::readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    if (fd < 3) continue;
    int accepting = 0;
    socklen_t length = sizeof accepting;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0 || !accepting) {
      continue;
    }
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0) continue;
    const int local_port = local.ss_family == AF_INET6
                               ? ntohs(reinterpret_cast<const sockaddr_in6&>(local).sin6_port)
                               : ntohs(reinterpret_cast<const sockaddr_in&>(local).sin_port);
    if (local_port != port) continue;
    if (lws* wsi = wsi_from_fd(context, fd)) {
      found = wsi;
      break;
    }
  }
  ::closedir(fds);
  return found;
}

HttpRequest read_lws_request(lws* wsi, const char* path) {
  HttpRequest request;
  request.method = method_of(wsi);
  request.path = path ? path : "";
  for (int index = 0;; ++index) {
    char fragment[2048];
    const int length =
        lws_hdr_copy_fragment(wsi, fragment, sizeof fragment, WSI_TOKEN_HTTP_URI_ARGS, index);
    if (length < 0) break;
    std::string_view arg(fragment, static_cast<size_t>(length));
    const auto equals = arg.find('=');
    if (equals == std::string_view::npos) {
      request.query[std::string(arg)] = "";
    } else {
      request.query[std::string(arg.substr(0, equals))] = std::string(arg.substr(equals + 1));
    }
  }
  request.authorization = header_value(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  request.content_type = header_value(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
  request.last_event_id = custom_header(wsi, "last-event-id:");
  request.forwarded_for = header_value(wsi, WSI_TOKEN_X_FORWARDED_FOR);
  request.cookie = header_value(wsi, WSI_TOKEN_HTTP_COOKIE);
  request.csrf_token = custom_header(wsi, "x-csrf-token:");
  request.forwarded_proto = custom_header(wsi, "x-forwarded-proto:");
  request.fetch_site = custom_header(wsi, "sec-fetch-site:");
  char peer[64] = {0};
  lws_get_peer_simple(wsi, peer, sizeof peer);
  request.peer_address = peer;
  return request;
}

}  // namespace tether::core
