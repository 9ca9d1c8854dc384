#include "hub/audit_log.hpp"

#include <pwd.h>
#include <unistd.h>

#include <vector>

#include "core/wall_clock.hpp"
#include "protocol/utf8.hpp"

namespace tether::hub {

AuditActor local_actor() {
  const uid_t uid = ::getuid();
  std::string user = "uid " + std::to_string(uid);
  std::vector<char> buffer(16384);
  struct passwd entry {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found)
    user = found->pw_name;
  return {"local:" + user, "local", "local"};
}

void AuditLog::record(const AuditActor& actor, const AuditAction& action) {
  // Names from a request's path may be any bytes; the trail is read as JSON.
  auto text = [](const std::string& bytes) {
    return protocol::with_invalid_utf8_replaced(bytes, '?');
  };
  store_.execute_later(
      "INSERT INTO audit_log (at, actor, role, source, action, target, outcome, reason, detail) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      core::utc_now(), text(actor.name), actor.role, text(actor.source), action.action,
      text(action.target), std::string(action.refusal.empty() ? "allowed" : "refused"),
      text(action.refusal), action.detail_json.empty() ? std::string("{}") : action.detail_json);
}

protocol::AuditPage AuditLog::read(const protocol::AuditQuery& query) {
  // One statement for every combination of filters: an empty filter
  // matches everything. The id range bounds the scan.
  auto select = store_.query(
      "SELECT id, at, actor, role, source, action, target, outcome, reason, detail "
      "FROM audit_log WHERE id > ?1 AND (?2 = '' OR actor = ?2) AND (?3 = '' OR action = ?3) "
      "AND (?4 = '' OR target = ?4) AND (?5 = '' OR at >= ?5) AND (?6 = '' OR at < ?6) "
      "ORDER BY id LIMIT ?7");
  select.bind_all(static_cast<int64_t>(query.after), query.actor, query.action, query.target,
                  query.since, query.until, static_cast<int64_t>(query.limit + 1));
  protocol::AuditPage page;
  while (select.executeStep()) {
    if (page.entries.size() == query.limit) {
      // One more matched: there is a following page, after the last shown.
      page.next = page.entries.back().id;
      break;
    }
    protocol::AuditEntry entry;
    entry.id = static_cast<uint64_t>(select.getColumn(0).getInt64());
    std::string* const texts[] = {&entry.at,      &entry.actor,  &entry.role,
                                  &entry.source,  &entry.action, &entry.target,
                                  &entry.outcome, &entry.reason, &entry.detail_json};
    for (int i = 0; i < 9; ++i)
      *texts[i] = select.getColumn(i + 1).getString();
    page.entries.push_back(std::move(entry));
  }
  return page;
}

}  // namespace tether::hub
