// Labels: `key=value` pairs that describe an agent (role=web, region=eu).
//
// Written as a comma-separated list, "role=web,region=eu", in flags,
// agent.conf and storage; in JSON as an object {"role":"web"}. A key is 1 to
// 63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit; a
// value is 0 to 63 of the same (the rule Kubernetes applies to label
// names and values). Keys are unique; the list is kept sorted by key.
// Selectors that pick agents by their labels: selector.hpp.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

using Labels = std::map<std::string, std::string>;

// At most this many labels on one agent (hello, agent.conf, the hub's own).
inline constexpr size_t kMaxLabels = 64;
// The rule of keys and values, for labels and for selectors (selector.hpp),
// said in words for error messages.
inline constexpr std::string_view kLabelKeyRule =
    "1 to 63 of A-Z a-z 0-9 . _ - starting with a letter or digit";
inline constexpr std::string_view kLabelValueRule = "0 to 63 of A-Z a-z 0-9 . _ -";
// Whether `text` follows kLabelKeyRule (ASCII only, whatever the locale).
bool is_label_key(std::string_view text);
// Whether `text` follows kLabelValueRule; "" is a value.
bool is_label_value(std::string_view text);

// Errors: "invalid_labels", naming the pair and what is wrong with it.
// An empty text is no labels.
Result<Labels> parse_labels(std::string_view text);
// "key=value,key=value", sorted by key; parse_labels reads it back.
std::string format_labels(const Labels& labels);

// The member `field` of `object`, a JSON object of strings ({"role":"web"}),
// each pair checked by the rules above; absent or null: no labels. Errors
// (JsonObjectReader::field_error) name the field and the pair.
Result<Labels> read_labels(const JsonObjectReader& object, const char* field);
// The labels as a JSON object (a value: write the key first).
void write_labels(JsonWriter& json, const Labels& labels);
// `base` with `over` on top: a key in both takes over's value.
Labels overlay_labels(Labels base, const Labels& over);

}  // namespace tether::protocol
