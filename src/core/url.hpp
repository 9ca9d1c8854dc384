// Url: the parts of an http(s)/ws(s) URL that connecting needs.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::core {

struct Url {
  std::string scheme;  // http, https, ws, wss
  std::string host;    // without brackets for IPv6
  int port = 0;
  std::string path;  // "/..." (never empty), query included

  bool uses_tls() const { return scheme == "https" || scheme == "wss"; }
  // "http://host:port" (brackets around IPv6 hosts), for cpp-httplib.
  std::string origin() const;
};

// Accepts http, https, ws and wss URLs; rejects anything else with a message
// that quotes the input.
Result<Url> parse_url(std::string_view text);

// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
std::string url_encode(std::string_view text);

}  // namespace tether::core
