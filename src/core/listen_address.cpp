#include "core/listen_address.hpp"

#include <charconv>

namespace tether::core {

Result<std::pair<std::string, int>> parse_listen_address(const std::string& text,
                                                         const std::string& field) {
  auto bad = [&](const std::string& why) {
    return make_error(Errc::kInvalid, "invalid_listen", field + " '" + text + "': " + why);
  };
  std::string host;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find("]:");
    if (close == std::string::npos) return bad("expected [address]:port");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return bad("expected address:port");
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  int port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 0 ||
      port > 65535) {
    return bad("expected address:port with a port from 0 to 65535");
  }
  return std::make_pair(host, port);
}

}  // namespace tether::core
