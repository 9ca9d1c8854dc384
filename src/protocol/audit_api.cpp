#include "protocol/audit_api.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <set>

#include "protocol/json_reader.hpp"
#include "protocol/wire_integer.hpp"

namespace tether::protocol {

namespace {

// The digits text[from, from + count) as a number, if they are all digits.
std::optional<int> digits(std::string_view text, size_t from, size_t count) {
  if (from + count > text.size()) return std::nullopt;
  int value = 0;
  for (size_t i = from; i < from + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// Whether `text` is "YYYY-MM-DD", then optionally "THH:MM:SS", a fraction
// of 1 to 9 digits and "Z", with every field in its range.
bool is_utc_text(std::string_view text) {
  const auto year = digits(text, 0, 4), month = digits(text, 5, 2), day = digits(text, 8, 2);
  if (!year || !month || !day || text[4] != '-' || text[7] != '-' || *month < 1 || *month > 12 ||
      *day < 1 || *day > 31) {
    return false;
  }
  if (text.size() == 10) return true;
  const auto hour = digits(text, 11, 2), minute = digits(text, 14, 2), second = digits(text, 17, 2);
  if (text[10] != 'T' || !hour || !minute || !second || text[13] != ':' || text[16] != ':' ||
      *hour > 23 || *minute > 59 || *second > 60 || text.back() != 'Z') {
    return false;
  }
  if (text.size() == 20) return true;
  const size_t fraction = text.size() - 21;
  return text[19] == '.' && fraction >= 1 && fraction <= 9 && digits(text, 20, fraction);
}

std::string detail_text(const rapidjson::Value& detail) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  detail.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

Result<AuditEntry> read_audit_entry(const JsonObjectReader& object) {
  AuditEntry entry;
  TETHER_TRY(id, object.required_uint("id"));
  entry.id = *id;
  std::string* const texts[] = {&entry.at,     &entry.actor,  &entry.role,   &entry.source,
                                &entry.action, &entry.target, &entry.outcome};
  const char* const names[] = {"at", "actor", "role", "source", "action", "target", "outcome"};
  for (size_t i = 0; i < std::size(names); ++i) {
    TETHER_TRY(text, object.required_string(names[i]));
    *texts[i] = std::move(*text);
  }
  TETHER_TRY(reason, object.optional_string("reason"));
  entry.reason = reason->value_or("");
  TETHER_TRY(detail, object.optional_object("detail"));
  if (*detail) entry.detail_json = detail_text(**detail);
  return entry;
}

}  // namespace

void write_audit_entry(JsonWriter& json, const AuditEntry& entry) {
  json.begin_object();
  json.field("id", entry.id);
  json.field("at", entry.at);
  json.field("actor", entry.actor);
  json.field("role", entry.role);
  json.field("source", entry.source);
  json.field("action", entry.action);
  json.field("target", entry.target);
  json.field("outcome", entry.outcome);
  json.key("reason");
  if (entry.reason.empty()) {
    json.null();
  } else {
    json.string(entry.reason);
  }
  json.key("detail");
  json.raw(entry.detail_json.empty() ? "{}" : entry.detail_json);
  json.end_object();
}

std::string encode_audit_page(const AuditPage& page) {
  JsonWriter json;
  json.begin_object();
  json.key("entries");
  json.begin_array();
  for (const auto& entry : page.entries)
    write_audit_entry(json, entry);
  json.end_array();
  json.field("next", page.next);
  json.end_object();
  return json.str();
}

Result<AuditPage> decode_audit_page(std::string_view body) {
  TETHER_TRY(document, parse_json_object(body, "answer"));
  JsonObjectReader answer(*document, "answer");
  TETHER_TRY(entries, answer.required_array("entries"));
  AuditPage page;
  size_t index = 0;
  for (const auto& item : (*entries)->GetArray()) {
    const std::string path = "answer.entries[" + std::to_string(index++) + "]";
    if (!item.IsObject())
      return make_error(Errc::kProtocol, "invalid_field", path + ": expected an object");
    TETHER_TRY(entry, read_audit_entry(JsonObjectReader(item, path)));
    page.entries.push_back(std::move(*entry));
  }
  TETHER_TRY(next, answer.optional_uint("next"));
  page.next = *next;
  return page;
}

Result<std::string> normalize_utc(std::string_view text, std::string_view what) {
  if (!is_utc_text(text)) {
    return make_error(Errc::kInvalid, "invalid_field",
                      std::string(what) + ": expected a UTC time such as 2026-11-22 or " +
                          "2026-11-22T05:12:00Z, got '" + std::string(text) + "'");
  }
  std::string normal(text.substr(0, std::min<size_t>(text.size(), 19)));
  if (normal.size() == 10) normal += "T00:00:00";
  std::string fraction = text.size() > 21 ? std::string(text.substr(20, text.size() - 21)) : "";
  fraction = (fraction + "000").substr(0, 3);
  return normal + "." + fraction + "Z";
}

Result<AuditQuery> decode_audit_query(const std::map<std::string, std::string>& parameters) {
  static const std::set<std::string> kKnown = {"actor", "action", "target", "since",
                                               "until", "after",  "limit"};
  for (const auto& [name, value] : parameters) {
    if (!kKnown.count(name)) {
      return make_error(Errc::kInvalid, "invalid_field",
                        name +
                            ": unknown parameter (filters: actor, action, target, since, "
                            "until; paging: after, limit)");
    }
  }
  auto value = [&](const char* name) {
    auto found = parameters.find(name);
    return found == parameters.end() ? std::string() : found->second;
  };
  AuditQuery query;
  query.actor = value("actor");
  query.action = value("action");
  query.target = value("target");
  for (auto [name, into] : {std::pair{"since", &query.since}, std::pair{"until", &query.until}}) {
    if (value(name).empty()) continue;
    TETHER_TRY(time, normalize_utc(value(name), name));
    *into = std::move(*time);
  }
  if (parameters.count("after")) {
    auto after = parse_wire_integer(value("after"));
    if (!after) {
      return make_error(Errc::kInvalid, "invalid_field",
                        "after: expected an entry id, an integer from 0 to 2^63-1");
    }
    query.after = *after;
  }
  if (parameters.count("limit")) {
    auto limit = parse_wire_integer(value("limit"), kMaxAuditPage);
    if (!limit || *limit == 0) {
      return make_error(Errc::kInvalid, "invalid_field",
                        "limit: expected 1 to " + std::to_string(kMaxAuditPage));
    }
    query.limit = *limit;
  }
  return query;
}

std::vector<std::pair<std::string, std::string>> audit_query_parameters(const AuditQuery& query) {
  std::vector<std::pair<std::string, std::string>> parameters;
  const std::pair<const char*, const std::string*> texts[] = {{"actor", &query.actor},
                                                              {"action", &query.action},
                                                              {"target", &query.target},
                                                              {"since", &query.since},
                                                              {"until", &query.until}};
  for (const auto& [name, text] : texts) {
    if (!text->empty()) parameters.emplace_back(name, *text);
  }
  if (query.after != 0) parameters.emplace_back("after", std::to_string(query.after));
  if (query.limit != kDefaultAuditPage)
    parameters.emplace_back("limit", std::to_string(query.limit));
  return parameters;
}

}  // namespace tether::protocol
