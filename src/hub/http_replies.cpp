#include "hub/http_replies.hpp"

#include "protocol/api_error.hpp"
#include "protocol/json_reader.hpp"

namespace tether::hub {

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    const size_t slash = path.find('/', start);
    const size_t end = slash == std::string::npos ? path.size() : slash;
    if (end > start) parts.push_back(path.substr(start, end - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return parts;
}

void respond_error(const std::shared_ptr<core::HttpExchange>& exchange, int status,
                   const std::string& code, const std::string& message, bool retryable) {
  exchange->respond(
      core::json_response(status, protocol::api_error_body(code, message, retryable)));
}

void respond_error(const std::shared_ptr<core::HttpExchange>& exchange, protocol::ErrorCode code,
                   const std::string& message) {
  respond_error(exchange, protocol::http_status(code), std::string(protocol::to_string(code)),
                message, protocol::is_retryable(code));
}

Result<std::string> cancel_reason(const std::string& body, std::string fallback) {
  if (body.empty()) return fallback;
  TETHER_TRY(document, protocol::parse_json_object(body, "cancel"));
  TETHER_TRY(given, protocol::JsonObjectReader(*document, "cancel").optional_string("reason"));
  if (*given && !(*given)->empty()) return std::move(**given);
  return fallback;
}

bool parse_uint(const std::string& text, uint64_t& out, uint64_t max) {
  auto value = protocol::parse_wire_integer(text, max);
  if (value) out = *value;
  return value.has_value();
}

}  // namespace tether::hub
