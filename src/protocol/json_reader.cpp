#include "protocol/json_reader.hpp"

#include <rapidjson/error/en.h>

#include "protocol/utf8.hpp"
#include "protocol/wire_integer.hpp"

namespace tether::protocol {

namespace {

// RapidJSON 1.1 validates the raw bytes of strings but lets a lone \uDC00 to
// \uDFFF escape through, decoding it to bytes that are not UTF-8: such a
// string would be stored and later sent on as JSON nobody can parse. The
// path of the first one, if any.
std::optional<std::string> invalid_string(const rapidjson::Value& value, const std::string& path) {
  if (value.IsString()) {
    if (is_valid_utf8(std::string_view(value.GetString(), value.GetStringLength()))) {
      return std::nullopt;
    }
    return path;
  }
  if (value.IsObject()) {
    for (const auto& member : value.GetObject()) {
      const std::string_view name(member.name.GetString(), member.name.GetStringLength());
      if (!is_valid_utf8(name)) return path + " (a field name)";
      if (auto found = invalid_string(member.value, path + "." + std::string(name))) return found;
    }
  } else if (value.IsArray()) {
    size_t index = 0;
    for (const auto& item : value.GetArray()) {
      if (auto found = invalid_string(item, path + "[" + std::to_string(index++) + "]")) {
        return found;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Result<rapidjson::Document> parse_json_object(std::string_view text, std::string_view what) {
  // Strings must be UTF-8: the whole text is checked here (eight ASCII bytes
  // at a time), and escapes below (invalid_string). Not with RapidJSON's
  // kParseValidateEncodingFlag: that decodes and re-encodes every character
  // of every string, a fifth of the hub's time carrying bulk output (issue
  // [6/8]). (RAPIDJSON_SSE2 stays undefined: it does not reach this
  // length-bounded parse, and with it the CLI refused the hub's live-output
  // events; not investigated further.)
  if (!is_valid_utf8(text)) {
    return make_error(Errc::kProtocol, "malformed_json",
                      std::string(what) + ": invalid JSON: not valid UTF-8");
  }
  rapidjson::Document document;
  // kParseStopWhenDone is off, so trailing garbage after the object is an
  // error too.
  document.Parse(text.data(), text.size());
  if (document.HasParseError()) {
    return make_error(Errc::kProtocol, "malformed_json",
                      std::string(what) + ": invalid JSON at offset " +
                          std::to_string(document.GetErrorOffset()) + ": " +
                          rapidjson::GetParseError_En(document.GetParseError()));
  }
  if (!document.IsObject()) {
    return make_error(
        Errc::kProtocol, "malformed_json",
        std::string(what) + ": expected a JSON object, got " + json_type_name(document));
  }
  if (auto path = invalid_string(document, std::string(what))) {
    return make_error(Errc::kProtocol, "malformed_json",
                      *path + ": not valid UTF-8 once decoded (an unpaired surrogate escape)");
  }
  return document;
}

const char* json_type_name(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "boolean";
    case rapidjson::kObjectType:
      return "object";
    case rapidjson::kArrayType:
      return "array";
    case rapidjson::kStringType:
      return "string";
    case rapidjson::kNumberType:
      return "number";
  }
  return "unknown";
}

Error JsonObjectReader::field_error(const char* field, const std::string& reason) const {
  return make_error(Errc::kInvalid, "invalid_field", path_ + "." + field + ": " + reason);
}

bool JsonObjectReader::has(const char* field) const {
  return find(field) != nullptr;
}

const rapidjson::Value* JsonObjectReader::find(const char* field) const {
  auto it = object_.FindMember(field);
  if (it == object_.MemberEnd()) return nullptr;
  return &it->value;
}

Result<std::string> JsonObjectReader::required_string(const char* field) const {
  const auto* value = find(field);
  if (!value) return field_error(field, "is required");
  if (!value->IsString()) {
    return field_error(field, std::string("expected a string, got ") + json_type_name(*value));
  }
  return std::string(value->GetString(), value->GetStringLength());
}

Result<std::optional<std::string>> JsonObjectReader::optional_string(const char* field) const {
  const auto* value = find(field);
  if (!value || value->IsNull()) return std::optional<std::string>();
  if (!value->IsString()) {
    return field_error(field, std::string("expected a string, got ") + json_type_name(*value));
  }
  return std::optional<std::string>(std::string(value->GetString(), value->GetStringLength()));
}

Result<uint64_t> JsonObjectReader::required_uint(const char* field) const {
  const auto* value = find(field);
  if (!value) return field_error(field, "is required");
  if (!value->IsUint64()) {
    return field_error(field, std::string("expected a non-negative integer, got ") +
                                  (value->IsNumber() ? "a negative or fractional number"
                                                     : json_type_name(*value)));
  }
  if (value->GetUint64() > kMaxWireInteger) {
    return field_error(
        field, "expected an integer from 0 to 2^63-1, got " + std::to_string(value->GetUint64()));
  }
  return value->GetUint64();
}

Result<std::optional<uint64_t>> JsonObjectReader::optional_uint(const char* field) const {
  const auto* value = find(field);
  if (!value || value->IsNull()) return std::optional<uint64_t>();
  TETHER_TRY(result, required_uint(field));
  return std::optional<uint64_t>(*result);
}

Result<std::optional<int64_t>> JsonObjectReader::optional_int(const char* field) const {
  const auto* value = find(field);
  if (!value || value->IsNull()) return std::optional<int64_t>();
  if (!value->IsInt64()) {
    return field_error(field, std::string("expected an integer, got ") + json_type_name(*value));
  }
  return std::optional<int64_t>(value->GetInt64());
}

Result<std::optional<bool>> JsonObjectReader::optional_bool(const char* field) const {
  const auto* value = find(field);
  if (!value || value->IsNull()) return std::optional<bool>();
  if (!value->IsBool()) {
    return field_error(field, std::string("expected true or false, got ") + json_type_name(*value));
  }
  return std::optional<bool>(value->GetBool());
}

Result<const rapidjson::Value*> JsonObjectReader::required_object(const char* field) const {
  const auto* value = find(field);
  if (!value) return field_error(field, "is required");
  if (!value->IsObject()) {
    return field_error(field, std::string("expected an object, got ") + json_type_name(*value));
  }
  return value;
}

Result<const rapidjson::Value*> JsonObjectReader::optional_object(const char* field) const {
  const auto* value = find(field);
  if (!value || value->IsNull()) return static_cast<const rapidjson::Value*>(nullptr);
  if (!value->IsObject()) {
    return field_error(field, std::string("expected an object, got ") + json_type_name(*value));
  }
  return value;
}

Result<const rapidjson::Value*> JsonObjectReader::required_array(const char* field) const {
  const auto* value = find(field);
  if (!value) return field_error(field, "is required");
  if (!value->IsArray()) {
    return field_error(field, std::string("expected an array, got ") + json_type_name(*value));
  }
  return value;
}

}  // namespace tether::protocol
