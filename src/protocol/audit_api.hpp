// The audit trail on the operator API (docs/protocol.md 11.3):
// GET /api/v1/audit?actor=&action=&target=&since=&until=&after=&limit=
// answers {"entries": [entry, ...], "next": id or null}, oldest first.
//
// The hub writes the page and reads the query with this code; the CLI
// writes the query and reads the page with it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

// Entries per page: `limit` 1 to kMaxAuditPage, kDefaultAuditPage if absent.
inline constexpr uint64_t kDefaultAuditPage = 100;
inline constexpr uint64_t kMaxAuditPage = 1000;

// One row of the audit trail. `detail_json` is a JSON object that never
// holds a token, an env value or a secret.
struct AuditEntry {
  uint64_t id = 0;      // increasing; the paging cursor
  std::string at;       // UTC, "2026-11-22T05:12:00.123Z"
  std::string actor;    // a token's name, "local:USER", "agent:NAME" or "reg-..."
  std::string role;     // admin, operator, viewer, local, agent or registration
  std::string source;   // the request's remote address, or "local"
  std::string action;   // "task.submit", "token.revoke", ...
  std::string target;   // a task id, an agent or token name; may be empty
  std::string outcome;  // "allowed" or "refused"
  std::string reason;   // why refused; empty when allowed (null on the wire)
  std::string detail_json = "{}";
};

struct AuditPage {
  std::vector<AuditEntry> entries;
  // The `after` of the following page; nothing when this page is the last.
  std::optional<uint64_t> next;
};

void write_audit_entry(JsonWriter& json, const AuditEntry& entry);
std::string encode_audit_page(const AuditPage& page);
// Errors ("invalid_field") name the field ("answer.entries[2].detail").
// Unknown fields are ignored.
Result<AuditPage> decode_audit_page(std::string_view body);

// The filters of GET /api/v1/audit. Empty strings filter nothing; `since`
// (inclusive) and `until` (exclusive) compare with `at`.
struct AuditQuery {
  std::string actor, action, target;
  std::string since, until;  // UTC, as normalize_utc writes it
  uint64_t after = 0;        // entries with a greater id
  uint64_t limit = kDefaultAuditPage;
};
// The query parameters, decoded (the hub's side). Errors ("invalid_field")
// name the parameter: an unknown one (a mistyped filter must not widen an
// audit), a time that is not UTC, a limit outside 1..kMaxAuditPage, an
// `after` outside 0..2^63-1.
Result<AuditQuery> decode_audit_query(const std::map<std::string, std::string>& parameters);
// The parameters that differ from the defaults, as name and value (the
// CLI's side; it percent-encodes them).
std::vector<std::pair<std::string, std::string>> audit_query_parameters(const AuditQuery& query);

// "2026-11-22", "2026-11-22T05:12:00Z" or "2026-11-22T05:12:00.123456Z"
// in the fixed form the hub stores ("2026-11-22T05:12:00.123Z", which
// sorts as text in time order; finer fractions are cut to milliseconds).
// Errors ("invalid_field") name `what`.
Result<std::string> normalize_utc(std::string_view text, std::string_view what);

}  // namespace tether::protocol
