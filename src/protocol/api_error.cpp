#include "protocol/api_error.hpp"

#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

std::string encode_api_error(const ApiError& error) {
  JsonWriter json;
  json.begin_object();
  json.key("error");
  json.begin_object();
  json.field("code", error.code);
  json.field("message", error.message);
  json.field("retryable", error.retryable);
  json.end_object();
  json.end_object();
  return json.str();
}

std::optional<ApiError> parse_api_error(std::string_view body) {
  auto document = parse_json_object(body, "body");
  if (!document) return std::nullopt;
  auto object = JsonObjectReader(*document, "body").optional_object("error");
  if (!object || !*object) return std::nullopt;
  JsonObjectReader error(**object, "error");
  ApiError parsed;
  auto code = error.optional_string("code");
  auto message = error.optional_string("message");
  auto retryable = error.optional_bool("retryable");
  if (!code || !message || !retryable) return std::nullopt;
  parsed.code = code->value_or("");
  parsed.message = message->value_or("");
  parsed.retryable = retryable->value_or(false);
  return parsed;
}

std::string api_error_body(std::string_view code, std::string_view message, bool retryable) {
  return encode_api_error({std::string(code), std::string(message), retryable});
}

}  // namespace tether::protocol
