#include "core/url.hpp"

#include <charconv>

namespace tether::core {

std::string Url::origin() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  const std::string http_scheme = uses_tls() ? "https" : "http";
  return http_scheme + "://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<Url> parse_url(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(Errc::kInvalid, "invalid_url",
                      "'" + std::string(text) + "' is not a usable URL: " + why);
  };
  Url url;
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return bad("expected scheme://host[:port][/path]");
  url.scheme = std::string(text.substr(0, scheme_end));
  for (auto& c : url.scheme)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (url.scheme != "http" && url.scheme != "https" && url.scheme != "ws" && url.scheme != "wss") {
    return bad("scheme must be http, https, ws or wss");
  }
  std::string_view rest = text.substr(scheme_end + 3);
  const auto path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  url.path = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (url.path[0] == '?') url.path = "/" + url.path;
  if (authority.find('@') != std::string_view::npos) {
    return bad("credentials in URLs are not accepted; use a token file");
  }
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("unexpected text after the IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty()) return bad("no host");
  if (port_text.empty()) {
    url.port = url.uses_tls() ? 443 : 80;
  } else {
    auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), url.port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || url.port < 1 ||
        url.port > 65535) {
      return bad("port must be a number from 1 to 65535");
    }
  }
  return url;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace tether::core
