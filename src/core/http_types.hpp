// The request and response shapes the web server hands to its owner.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tether::core {

struct HttpRequest {
  std::string method;                        // GET, POST, PUT, DELETE, ...
  std::string path;                          // without the query string
  std::map<std::string, std::string> query;  // decoded name -> value
  std::string authorization;                 // the Authorization header, verbatim
  std::string last_event_id;                 // Last-Event-ID, for SSE
  std::string content_type;
  std::string forwarded_for;    // X-Forwarded-For, set by a proxy in front
  std::string cookie;           // the Cookie header, verbatim (RFC 6265 5.4)
  std::string csrf_token;       // X-CSRF-Token, sent by the web UI's page
  std::string fetch_site;       // Sec-Fetch-Site, sent by browsers (same-origin, cross-site, ...)
  std::string forwarded_proto;  // X-Forwarded-Proto ("https" behind a TLS proxy)
  std::string peer_address;     // the TCP peer
  std::string body;

  std::string query_value(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
  }
  bool has_query(const std::string& name) const { return query.count(name) != 0; }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // lowercase names
  std::string body;
  // For large bodies: when set (with content_length), pieces are pulled from
  // here as the socket drains instead of holding the whole body in memory.
  // Return an empty string when done.
  std::function<std::string()> body_source;
  std::optional<uint64_t> content_length;
};

inline HttpResponse json_response(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

// `text` without the optional whitespace (OWS: spaces and tabs) around it,
// as header values and their list elements are read (RFC 9110 5.6.3).
inline std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

}  // namespace tether::core
