#include "protocol/labels.hpp"

#include <cctype>

namespace tether::protocol {

namespace {

bool label_character(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool valid_part(std::string_view text, bool is_key) {
  if (text.size() > 63 || (is_key && text.empty())) return false;
  if (is_key && !std::isalnum(static_cast<unsigned char>(text.front()))) return false;
  for (char c : text) {
    if (!label_character(c)) return false;
  }
  return true;
}

}  // namespace

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
    if (!valid_part(key, true)) {
      return make_error(Errc::kInvalid, "invalid_labels",
                        "label " + shown +
                            ": the key must be 1 to 63 of A-Z a-z 0-9 . _ - starting with a "
                            "letter or digit");
    }
    if (!valid_part(value, false)) {
      return make_error(Errc::kInvalid, "invalid_labels",
                        "label " + shown + ": the value must be 0 to 63 of A-Z a-z 0-9 . _ -");
    }
    if (!labels.emplace(std::string(key), std::string(value)).second) {
      return make_error(Errc::kInvalid, "invalid_labels", "label " + shown + ": key given twice");
    }
  }
  return labels;
}

std::string format_labels(const Labels& labels) {
  std::string text;
  for (const auto& [key, value] : labels)
    text += (text.empty() ? "" : ",") + key + "=" + value;
  return text;
}

}  // namespace tether::protocol
