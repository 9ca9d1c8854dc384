#include "cli/audit_command.hpp"

#include <chrono>
#include <cstdio>

#include "cli/printable.hpp"
#include "core/url.hpp"
#include "core/wall_clock.hpp"
#include "protocol/audit_api.hpp"
#include "protocol/duration_text.hpp"
#include "protocol/wire_integer.hpp"

namespace tether::cli {

namespace {

// Rows at most per run (pages of protocol::kMaxAuditPage are fetched).
constexpr uint64_t kMaxRows = 1'000'000;

Error usage(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

// An age ("30m", "2h", "7d", "90s") as the UTC time that long ago, or a UTC
// time in the form the hub compares.
Result<std::string> time_option(const std::string& text, const std::string& option) {
  if (const auto age = protocol::parse_duration_s(text)) {
    return core::format_utc(std::chrono::system_clock::now() - std::chrono::seconds(*age));
  }
  auto time = protocol::normalize_utc(text, option);
  if (!time) {
    return usage(option + ": expected an age (30m, 2h, 7d) or a UTC time (2026-11-22, " +
                 "2026-11-22T05:12:00Z), got '" + text + "'");
  }
  return time;
}

Result<protocol::AuditQuery> query_of(const CommandLine& line, uint64_t& rows) {
  protocol::AuditQuery query;
  query.actor = line.value("--actor");
  query.action = line.value("--action");
  query.target = line.value("--target");
  for (auto [option, into] : {std::pair{"--since", &query.since}, {"--until", &query.until}}) {
    if (!line.has(option)) continue;
    TETHER_TRY(time, time_option(line.value(option), option));
    *into = std::move(*time);
  }
  if (line.has("--after")) {
    auto after = protocol::parse_wire_integer(line.value("--after"));
    if (!after) return usage("--after: expected an entry id, got '" + line.value("--after") + "'");
    query.after = *after;
  }
  if (line.has("--limit")) {
    auto limit = protocol::parse_wire_integer(line.value("--limit"), kMaxRows);
    if (!limit || *limit == 0) {
      return usage("--limit: expected 1 to " + std::to_string(kMaxRows) + ", got '" +
                   line.value("--limit") + "'");
    }
    rows = *limit;
  }
  return query;
}

std::string target_of(const protocol::AuditQuery& query) {
  std::string target = "/api/v1/audit";
  for (const auto& [name, value] : protocol::audit_query_parameters(query))
    target +=
        (target.find('?') == std::string::npos ? "?" : "&") + name + "=" + core::url_encode(value);
  return target;
}

void print_table(const protocol::AuditPage& page) {
  std::printf("%-6s %-24s %-20s %-15s %-26s %-24s %-8s %s\n", "ID", "AT", "ACTOR", "SOURCE",
              "ACTION", "TARGET", "OUTCOME", "DETAIL");
  for (const auto& entry : page.entries) {
    // Refusals say why; allowed actions show their detail object.
    const std::string detail = entry.reason.empty() ? entry.detail_json : entry.reason;
    std::printf("%-6llu %-24s %-20s %-15s %-26s %-24s %-8s %s\n",
                static_cast<unsigned long long>(entry.id), printable(entry.at).c_str(),
                printable(entry.actor).c_str(), printable(entry.source).c_str(),
                printable(entry.action).c_str(), printable(entry.target).c_str(),
                printable(entry.outcome).c_str(), printable(detail).c_str());
  }
}

}  // namespace

const std::vector<OptionSpec>& audit_options() {
  static const std::vector<OptionSpec> options = {
      {"--actor", "", true}, {"--action", "", true}, {"--target", "", true}, {"--since", "", true},
      {"--until", "", true}, {"--after", "", true},  {"--limit", "", true},  {"--json", "", false}};
  return options;
}

Result<int> run_audit_command(HubClient& client, const CommandLine& line) {
  if (!line.operands.empty()) return usage("audit: unexpected '" + line.operands[0] + "'");
  uint64_t rows = protocol::kDefaultAuditPage;
  TETHER_TRY(query, query_of(line, rows));
  protocol::AuditPage all;
  for (;;) {
    query->limit = std::min<uint64_t>(rows - all.entries.size(), protocol::kMaxAuditPage);
    TETHER_TRY(reply, client.get(target_of(*query)));
    TETHER_TRY(page, protocol::decode_audit_page(reply->body));
    for (auto& entry : page->entries)
      all.entries.push_back(std::move(entry));
    all.next = page->next;
    if (!page->next || all.entries.size() >= rows) break;
    query->after = *page->next;
  }
  if (line.has("--json")) {
    std::printf("%s\n", printable_json(protocol::encode_audit_page(all)).c_str());
  } else {
    print_table(all);
  }
  if (all.next) {
    std::fprintf(stderr, "tether: more entries follow; the next ones with --after %llu\n",
                 static_cast<unsigned long long>(*all.next));
  }
  return 0;
}

}  // namespace tether::cli
