// The error body of every HTTP answer that is not a success
// (docs/protocol.md 7 and 11): {"error":{"code","message","retryable"}}.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tether::protocol {

struct ApiError {
  std::string code;
  std::string message;
  bool retryable = false;
};

std::string encode_api_error(const ApiError& error);
// The same, for a code of the closed set (error_codes.hpp) or any code text.
std::string api_error_body(std::string_view code, std::string_view message, bool retryable);
// Nothing if `body` is not such an object (a proxy's page, an empty body).
std::optional<ApiError> parse_api_error(std::string_view body);

}  // namespace tether::protocol
