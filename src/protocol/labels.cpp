#include "protocol/labels.hpp"

namespace tether::protocol {

namespace {

constexpr size_t kMaxLength = 63;

bool letter_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool label_character(char c) {
  return letter_or_digit(c) || c == '.' || c == '_' || c == '-';
}

bool label_characters(std::string_view text) {
  for (char c : text) {
    if (!label_character(c)) return false;
  }
  return true;
}

}  // namespace

bool is_label_key(std::string_view text) {
  return !text.empty() && text.size() <= kMaxLength && letter_or_digit(text.front()) &&
         label_characters(text);
}

bool is_label_value(std::string_view text) {
  return text.size() <= kMaxLength && label_characters(text);
}

Result<Labels> parse_labels(std::string_view text) {
  Labels labels;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view pair = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    while (!pair.empty() && pair.front() == ' ')
      pair.remove_prefix(1);
    while (!pair.empty() && pair.back() == ' ')
      pair.remove_suffix(1);
    const std::string shown = "'" + std::string(pair) + "'";
    const size_t equals = pair.find('=');
    if (equals == std::string_view::npos) {
      return make_error(Errc::kInvalid, "invalid_labels",
                        "label " + shown + ": expected key=value");
    }
    const std::string_view key = pair.substr(0, equals);
    const std::string_view value = pair.substr(equals + 1);
    if (!is_label_key(key)) {
      return make_error(Errc::kInvalid, "invalid_labels",
                        "label " + shown + ": the key must be " + std::string(kLabelKeyRule));
    }
    if (!is_label_value(value)) {
      return make_error(Errc::kInvalid, "invalid_labels",
                        "label " + shown + ": the value must be " + std::string(kLabelValueRule));
    }
    if (!labels.emplace(std::string(key), std::string(value)).second) {
      return make_error(Errc::kInvalid, "invalid_labels", "label " + shown + ": key given twice");
    }
  }
  return labels;
}

Result<Labels> read_labels(const JsonObjectReader& object, const char* field) {
  Labels labels;
  const rapidjson::Value* value = object.find(field);
  if (!value || value->IsNull()) return labels;
  if (!value->IsObject()) {
    return object.field_error(
        field, std::string("expected an object of strings, got ") + json_type_name(*value));
  }
  if (value->MemberCount() > kMaxLabels) {
    return object.field_error(field, "more than " + std::to_string(kMaxLabels) + " labels");
  }
  for (const auto& member : value->GetObject()) {
    const std::string key(member.name.GetString(), member.name.GetStringLength());
    if (!member.value.IsString()) {
      return object.field_error(field, "'" + key + "': expected a string value");
    }
    const std::string text(member.value.GetString(), member.value.GetStringLength());
    if (!is_label_key(key) || !is_label_value(text)) {
      return object.field_error(field, "label '" + key + "=" + text + "': keys are " +
                                           std::string(kLabelKeyRule) + ", values " +
                                           std::string(kLabelValueRule));
    }
    labels[key] = text;
  }
  return labels;
}

void write_labels(JsonWriter& json, const Labels& labels) {
  json.begin_object();
  for (const auto& [key, value] : labels)
    json.field(key, value);
  json.end_object();
}

Labels overlay_labels(Labels base, const Labels& over) {
  for (const auto& [key, value] : over)
    base[key] = value;
  return base;
}

std::string format_labels(const Labels& labels) {
  std::string text;
  for (const auto& [key, value] : labels)
    text += (text.empty() ? "" : ",") + key + "=" + value;
  return text;
}

}  // namespace tether::protocol
