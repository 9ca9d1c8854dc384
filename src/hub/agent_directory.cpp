#include "hub/agent_directory.hpp"

#include "core/pg_store.hpp"
#include "core/wall_clock.hpp"

namespace tether::hub {

namespace {

// ON CONFLICT: standard SQL that SQLite (3.24+) and PostgreSQL both take.
constexpr const char* kSetLabel =
    "INSERT INTO agent_labels (agent, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (agent, key) DO UPDATE SET value = excluded.value";

std::string text_or_empty(const core::SqlValue& column) {
  return column.isNull() ? std::string() : column.getString();
}

std::optional<int64_t> integer_or_none(const core::SqlValue& column) {
  if (column.isNull()) return std::nullopt;
  return column.getInt64();
}

}  // namespace

void AgentDirectory::add(const std::string& name, const std::string& token_digest,
                         const protocol::Labels& labels) {
  store_.execute("INSERT INTO agents (name, token_sha256, created_at) VALUES (?, ?, ?)", name,
                 token_digest, core::utc_now());
  for (const auto& [key, value] : labels) {
    store_.execute(kSetLabel, name, key, value);
  }
}

bool AgentDirectory::set_token_digest(const std::string& name, const std::string& token_digest) {
  return store_.execute("UPDATE agents SET token_sha256 = ? WHERE name = ?", token_digest, name) >
         0;
}

bool AgentDirectory::remove(const std::string& name) {
  if (store_.execute("DELETE FROM agents WHERE name = ?", name) == 0) return false;
  store_.execute("DELETE FROM agent_labels WHERE agent = ?", name);
  return true;
}

bool AgentDirectory::exists(const std::string& name) {
  auto query = store_.query("SELECT 1 FROM agents WHERE name = ?");
  query.bind(1, name);
  return query.executeStep();
}

std::vector<std::string> AgentDirectory::names() {
  std::vector<std::string> names;
  auto query = store_.query("SELECT name FROM agents ORDER BY name");
  while (query.executeStep())
    names.push_back(query.getColumn(0).getString());
  return names;
}

std::vector<AgentRecord> AgentDirectory::list() {
  std::vector<AgentRecord> agents;
  {
    auto query = store_.query(
        "SELECT name, created_at, last_seen_at, version, outbox_rows, outbox_bytes, "
        "outbox_reported_at FROM agents ORDER BY name");
    while (query.executeStep()) {
      AgentRecord agent;
      agent.name = query.getColumn(0).getString();
      agent.created_at = query.getColumn(1).getString();
      agent.last_seen_at = text_or_empty(query.getColumn(2));
      agent.version = text_or_empty(query.getColumn(3));
      agent.outbox_rows = integer_or_none(query.getColumn(4));
      agent.outbox_bytes = integer_or_none(query.getColumn(5));
      agent.outbox_reported_at = text_or_empty(query.getColumn(6));
      agents.push_back(std::move(agent));
    }
  }
  for (auto& agent : agents) {
    agent.reported_labels = reported_labels_of(agent.name);
    agent.hub_labels = hub_labels_of(agent.name);
    agent.labels = protocol::overlay_labels(agent.reported_labels, agent.hub_labels);
  }
  return agents;
}

protocol::Labels AgentDirectory::labels_of(const std::string& name) {
  return protocol::overlay_labels(reported_labels_of(name), hub_labels_of(name));
}

bool AgentDirectory::set_hub_label(const std::string& name, const std::string& key,
                                   const std::optional<std::string>& value) {
  if (!exists(name)) return false;
  if (value) {
    store_.execute(kSetLabel, name, key, *value);
  } else {
    store_.execute("DELETE FROM agent_labels WHERE agent = ? AND key = ?", name, key);
  }
  return true;
}

protocol::Labels AgentDirectory::reported_labels_of(const std::string& name) {
  auto query = store_.query("SELECT reported_labels FROM agents WHERE name = ?");
  query.bind(1, name);
  if (!query.executeStep()) return {};
  // Written by record_hello from a decoded hello: it parses; if it did not, none.
  auto labels = protocol::parse_labels(query.getColumn(0).getString());
  return labels ? *labels : protocol::Labels{};
}

protocol::Labels AgentDirectory::hub_labels_of(const std::string& name) {
  protocol::Labels labels;
  auto query = store_.query("SELECT key, value FROM agent_labels WHERE agent = ? ORDER BY key");
  query.bind(1, name);
  while (query.executeStep())
    labels[query.getColumn(0).getString()] = query.getColumn(1).getString();
  return labels;
}

std::optional<std::string> AgentDirectory::token_digest_of(const std::string& name) {
  auto query = store_.query("SELECT token_sha256 FROM agents WHERE name = ?");
  query.bind(1, name);
  if (!query.executeStep()) return std::nullopt;
  return query.getColumn(0).getString();
}

std::optional<std::string> AgentDirectory::name_with_token_digest(const std::string& token_digest) {
  // Looked up by digest: the index compares digests, never the token itself.
  auto query = store_.query("SELECT name, token_sha256 FROM agents WHERE token_sha256 = ?");
  query.bind(1, token_digest);
  if (!query.executeStep()) return std::nullopt;
  return query.getColumn(0).getString();
}

void AgentDirectory::record_seen(const std::string& name, int64_t seen_ms) {
  store_.execute(
      "UPDATE agents SET seen_at_ms = ? WHERE name = ? AND (seen_at_ms IS NULL OR seen_at_ms < ?)",
      seen_ms, name, seen_ms);
}

void AgentDirectory::record_seen_all(const std::vector<std::string>& names, int64_t seen_ms) {
  // Every element quoted: an agent may be named "null", which unquoted is a
  // NULL element.
  const std::string array = core::pg_text_array(names);
  store_.execute(
      "UPDATE agents SET seen_at_ms = ? WHERE name = ANY(?) AND (seen_at_ms IS NULL OR "
      "seen_at_ms < ?)",
      seen_ms, array, seen_ms);
}

std::optional<int64_t> AgentDirectory::seen_at_ms(const std::string& name) {
  auto query = store_.query("SELECT seen_at_ms FROM agents WHERE name = ?");
  query.bind(1, name);
  if (!query.executeStep() || query.getColumn(0).isNull()) return std::nullopt;
  return query.getColumn(0).getInt64();
}

void AgentDirectory::record_hello(const std::string& name, const protocol::AgentHello& hello) {
  const std::string now = core::utc_now();
  store_.execute(
      "UPDATE agents SET version = ?, outbox_rows = ?, outbox_bytes = ?, outbox_reported_at = ?, "
      "last_seen_at = ?, reported_labels = ? WHERE name = ?",
      hello.version, hello.outbox_rows, hello.outbox_bytes, now, now,
      protocol::format_labels(hello.labels), name);
}

}  // namespace tether::hub
