// Field access on parsed JSON with errors that name the field.
//
// Every decoder in Tether reads through this, so a malformed task, frame or
// request body is rejected with the same shape of message:
//   "task.timeout_s: expected a non-negative integer, got string"
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::protocol {

// Parses `text` as one JSON object. `what` names it in errors ("task", "frame").
Result<rapidjson::Document> parse_json_object(std::string_view text, std::string_view what);

// The JSON type of a value, for messages ("string", "object", ...).
const char* json_type_name(const rapidjson::Value& value);

class JsonObjectReader {
 public:
  // `path` prefixes every error ("task", "task.command").
  JsonObjectReader(const rapidjson::Value& object, std::string path)
      : object_(object), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  bool has(const char* field) const;
  const rapidjson::Value* find(const char* field) const;

  Result<std::string> required_string(const char* field) const;
  Result<std::optional<std::string>> optional_string(const char* field) const;
  Result<uint64_t> required_uint(const char* field) const;
  Result<std::optional<uint64_t>> optional_uint(const char* field) const;
  Result<std::optional<int64_t>> optional_int(const char* field) const;  // null allowed
  Result<std::optional<bool>> optional_bool(const char* field) const;
  Result<const rapidjson::Value*> required_object(const char* field) const;
  Result<const rapidjson::Value*> optional_object(const char* field) const;  // nullptr if absent
  Result<const rapidjson::Value*> required_array(const char* field) const;

  // An error about `field` in this object.
  Error field_error(const char* field, const std::string& reason) const;

 private:
  const rapidjson::Value& object_;
  std::string path_;
};

}  // namespace tether::protocol
