#include "hub/hub_store.hpp"

#include "hub/pg_hub_schema.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace tether::hub {

namespace {

// kHubSchemaVersion (hub_store.hpp). 4: roles and audit (branch roles);
// 5: task secrets; 6: task limits; 7: labels agents report; 8: pool tasks;
// 9: fan-out runs; 10: web UI sessions.

// The tables version 3 added: written once, for new databases (full_schema)
// and for the upgrade from version 2.
constexpr const char* kVersion3Tables = R"SQL(
-- Tokens an edge host exchanges for its own agent token once
-- (`tether-agent register`): they expire, can be revoked, and count uses.
CREATE TABLE IF NOT EXISTS registration_tokens (
  id           TEXT PRIMARY KEY,
  token_sha256 TEXT NOT NULL UNIQUE,
  created_at   TEXT NOT NULL,
  expires_at   TEXT,
  revoked_at   TEXT,
  registered   INTEGER NOT NULL DEFAULT 0,
  labels       TEXT NOT NULL DEFAULT ''  -- given to every agent it registers
);

-- Labels the hub holds for an agent (docs/protocol.md: labels).
CREATE TABLE IF NOT EXISTS agent_labels (
  agent TEXT NOT NULL,
  key   TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (agent, key)
);
)SQL";

// The tables version 4 added: operator tokens with names and roles (they
// replace admin_tokens) and the audit trail, append-only: its triggers abort
// any UPDATE or DELETE, whoever runs it (the hub, sqlite3).
constexpr const char* kVersion4Tables = R"SQL(
CREATE TABLE IF NOT EXISTS operator_tokens (
  id             TEXT PRIMARY KEY,          -- "op-" and 12 hex digits of token_sha256
  name           TEXT NOT NULL UNIQUE,      -- never reused, even once revoked
  role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  agent_patterns TEXT NOT NULL DEFAULT '',  -- "web-*,db-1" (operators); '': every agent
  token_sha256   TEXT NOT NULL UNIQUE,
  created_at     TEXT NOT NULL,
  revoked_at     TEXT
);

-- Who did what, when, from where, and whether it was allowed. `detail` is a
-- JSON object that never holds a token, an env value or a secret.
CREATE TABLE IF NOT EXISTS audit_log (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      TEXT NOT NULL,
  actor   TEXT NOT NULL,  -- a token's name, "local:USER", "agent:NAME" or "reg-..."
  role    TEXT NOT NULL,  -- admin, operator, viewer, local, agent or registration
  source  TEXT NOT NULL,  -- the request's remote address, or "local"
  action  TEXT NOT NULL,  -- "task.submit", "token.revoke", ...
  target  TEXT NOT NULL DEFAULT '',
  outcome TEXT NOT NULL CHECK (outcome IN ('allowed', 'refused')),
  reason  TEXT NOT NULL DEFAULT '',
  detail  TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be updated');
END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted');
END;
)SQL";

// The tables version 5 added: written once, for new databases and for the
// upgrade from version 4.
constexpr const char* kVersion5Tables = R"SQL(
-- The secrets of tasks still to run (docs/protocol.md 3), sealed with the
-- key in secrets.key (AES-256-GCM, the task id and name as associated
-- data): never the values. Deleted when the task ends.
CREATE TABLE IF NOT EXISTS task_secrets (
  task_id    TEXT NOT NULL,
  name       TEXT NOT NULL,
  nonce      BLOB NOT NULL,  -- 12 random bytes, new for each value
  ciphertext BLOB NOT NULL,  -- the value encrypted, then GCM's 16-byte tag
  PRIMARY KEY (task_id, name)
);
)SQL";

// The tables and indexes version 9 added (fan-out runs, docs/protocol.md
// 11.5): for new databases and for the upgrade from version 8.
constexpr const char* kVersion9Tables = R"SQL(
CREATE TABLE IF NOT EXISTS runs (
  id                TEXT PRIMARY KEY,
  state             TEXT NOT NULL,  -- running, succeeded, failed, stopped, cancelled
  selector          TEXT NOT NULL DEFAULT '',
  agents            TEXT NOT NULL DEFAULT '',  -- the names given, space-separated
  command_json      TEXT NOT NULL,
  max_concurrency   INTEGER NOT NULL,  -- resolved to a count
  max_errors        INTEGER,           -- resolved to a count; NULL: no threshold
  canary            INTEGER NOT NULL DEFAULT 0,
  offline_timeout_s INTEGER NOT NULL,
  cancel_on_error   INTEGER NOT NULL DEFAULT 0,
  lost_is_error     INTEGER NOT NULL DEFAULT 0,
  cancelled         INTEGER NOT NULL DEFAULT 0,  -- an operator cancelled it
  stop_reason       TEXT,
  created_by        TEXT NOT NULL DEFAULT '',
  created_at        TEXT NOT NULL,
  finished_at       TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, created_at);
CREATE INDEX IF NOT EXISTS tasks_by_run ON tasks (run_id) WHERE run_id != '';
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id) WHERE run_id != '';
)SQL";

// The tables of versions 1 and 2 still in use, and the columns later versions
// added to them. Column names are meant to be read by operators with sqlite3;
// times are UTC text ("2026-11-22T05:12:00.123Z").
constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS agents (
  name               TEXT PRIMARY KEY,
  token_sha256       TEXT NOT NULL,
  created_at         TEXT NOT NULL,
  last_seen_at       TEXT,
  version            TEXT,
  outbox_rows        INTEGER,
  outbox_bytes       INTEGER,
  outbox_reported_at TEXT,
  reported_labels    TEXT NOT NULL DEFAULT '',  -- its last hello's labels: key=value,...
  -- When a hub on PostgreSQL last saw it (ms since the epoch), written at
  -- most every quarter lease: hubs decide leases on it together. NULL on
  -- hub.db, whose one hub keeps it in memory.
  seen_at_ms         INTEGER
);

CREATE TABLE IF NOT EXISTS tasks (
  id                 TEXT PRIMARY KEY,
  agent              TEXT NOT NULL,
  state              TEXT NOT NULL,
  command_json       TEXT NOT NULL,
  env_json           TEXT NOT NULL,
  secret_names       TEXT NOT NULL DEFAULT '',  -- names of its secrets, space-separated
  limits_json        TEXT NOT NULL DEFAULT '{}',  -- {"memory_max":...}: task_limits.hpp
  selector           TEXT NOT NULL DEFAULT '',  -- a pool task's (agent '' until one takes it)
  run_id             TEXT NOT NULL DEFAULT '',  -- the fan-out run it belongs to, if any
  held               INTEGER NOT NULL DEFAULT 0,  -- a run's task not yet released to dispatch
  released_at_ms     INTEGER,  -- when its run released it (offline_timeout_s counts from here)
  cwd                TEXT NOT NULL DEFAULT '',
  timeout_s          INTEGER NOT NULL DEFAULT 0,
  target             TEXT NOT NULL DEFAULT '',
  max_attempts       INTEGER NOT NULL DEFAULT 1,
  attempts_made      INTEGER NOT NULL DEFAULT 0,
  current_attempt    TEXT,
  cancel_requested   INTEGER NOT NULL DEFAULT 0,
  cancel_reason      TEXT,
  final_json         TEXT,
  output_verified    INTEGER,
  verification_error TEXT,
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_agent_state ON tasks (agent, state, created_at);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, created_at);

CREATE TABLE IF NOT EXISTS attempts (
  id                TEXT PRIMARY KEY,
  task_id           TEXT NOT NULL REFERENCES tasks (id),
  agent             TEXT NOT NULL,
  number            INTEGER NOT NULL,
  state             TEXT NOT NULL,
  dispatched_at     TEXT NOT NULL,
  dispatched_at_ms  INTEGER NOT NULL,
  started_at        TEXT,
  finished_at       TEXT,
  pid               INTEGER,
  final_json        TEXT,
  final_fingerprint TEXT,
  lost_reason       TEXT,
  agent_instance    TEXT              -- the agent process the poll came from, if it said
);
CREATE INDEX IF NOT EXISTS attempts_by_state ON attempts (state);
CREATE INDEX IF NOT EXISTS attempts_by_task ON attempts (task_id, number);

-- Everything a task's viewers see, in order: status changes (`state` is the
-- new state), output chunks, gaps and the final. Output bytes live here
-- once; `length` is the byte count of an output chunk or a gap.
CREATE TABLE IF NOT EXISTS events (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id        TEXT NOT NULL,
  attempt_id     TEXT,
  kind           TEXT NOT NULL,
  state          TEXT,
  stream         TEXT,
  seq            INTEGER,
  byte_offset    INTEGER,
  length         INTEGER,
  data           BLOB,
  payload        TEXT,
  stored_at      TEXT NOT NULL,
  stored_at_us   INTEGER NOT NULL,
  run_id         TEXT NOT NULL DEFAULT ''  -- its task's run, or the run's own events
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream
  ON events (attempt_id, stream, seq) WHERE stream IS NOT NULL;
)SQL";

// The table version 10 added: the web UI's sessions (docs/protocol.md 11.6).
// Only digests: neither the session id nor the operator token is stored.
constexpr const char* kVersion10Tables = R"SQL(
CREATE TABLE IF NOT EXISTS browser_sessions (
  id_sha256             TEXT PRIMARY KEY,  -- of the cookie's value
  operator_token_sha256 TEXT NOT NULL,     -- whose principal it acts as
  csrf_token            TEXT NOT NULL,
  created_at            TEXT NOT NULL,
  expires_at_ms         INTEGER NOT NULL,  -- 12 h after sign-in
  last_used_ms          INTEGER NOT NULL   -- updated at most once a minute
);
CREATE INDEX IF NOT EXISTS browser_sessions_by_use ON browser_sessions (last_used_ms);
)SQL";

// A new database gets everything at once.
const std::string& full_schema() {
  static const std::string text = std::string(kSchema) + kVersion3Tables + kVersion4Tables +
                                  kVersion5Tables + kVersion9Tables + kVersion10Tables;
  return text;
}

// Version 1 had no attempts.agent_instance.
constexpr const char* kUpgradeTo2 = "ALTER TABLE attempts ADD COLUMN agent_instance TEXT;";
// Version 2 had no registration tokens and no agent labels.
constexpr const char* kUpgradeTo3 = kVersion3Tables;
// Version 3 had unnamed admin tokens: each becomes role admin, named by its id.
const std::string& upgrade_to_4() {
  static const std::string text = std::string(kVersion4Tables) + R"SQL(
INSERT INTO operator_tokens (id, name, role, token_sha256, created_at)
  SELECT 'op-' || substr(token_sha256, 1, 12), 'op-' || substr(token_sha256, 1, 12), 'admin',
         token_sha256, created_at
  FROM admin_tokens;
DROP TABLE admin_tokens;
)SQL";
  return text;
}

// Version 4 had no task secrets.
const std::string& upgrade_to_5() {
  static const std::string text =
      std::string("ALTER TABLE tasks ADD COLUMN secret_names TEXT NOT NULL DEFAULT '';") +
      kVersion5Tables;
  return text;
}

// Version 10 had no shared last-seen time.
constexpr const char* kUpgradeTo11 = "ALTER TABLE agents ADD COLUMN seen_at_ms INTEGER;";
// Version 5 had no task limits.
constexpr const char* kUpgradeTo6 =
    "ALTER TABLE tasks ADD COLUMN limits_json TEXT NOT NULL DEFAULT '{}';";
// Version 6 had no labels reported by agents.
constexpr const char* kUpgradeTo7 =
    "ALTER TABLE agents ADD COLUMN reported_labels TEXT NOT NULL DEFAULT '';";
// Version 7 had no pool tasks.
constexpr const char* kUpgradeTo8 =
    "ALTER TABLE tasks ADD COLUMN selector TEXT NOT NULL DEFAULT '';";
// Version 8 had no runs.
const std::string& upgrade_to_9() {
  static const std::string text =
      std::string(
          "ALTER TABLE tasks ADD COLUMN run_id TEXT NOT NULL DEFAULT '';"
          "ALTER TABLE tasks ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
          "ALTER TABLE tasks ADD COLUMN released_at_ms INTEGER;"
          "ALTER TABLE events ADD COLUMN run_id TEXT NOT NULL DEFAULT '';") +
      kVersion9Tables;
  return text;
}

}  // namespace

NewestFirstPages::NewestFirstPages(const std::string& columns, const std::string& table) {
  const std::string head = "SELECT " + columns + " FROM " + table + " ";
  const std::string below =
      "(created_at, rowid) < (SELECT created_at, rowid FROM " + table + " WHERE id = ?)";
  const std::string tail = " ORDER BY created_at DESC, rowid DESC LIMIT ?";
  sql_[0] = head + tail;
  sql_[1] = head + "WHERE state = ?" + tail;
  sql_[2] = head + "WHERE " + below + tail;
  sql_[3] = head + "WHERE state = ? AND " + below + tail;
}

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

Result<void> make_data_dir(const std::string& data_dir) {
  if (::mkdir(data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(Errc::kIo, "data_dir",
                      "cannot create data directory '" + data_dir + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(data_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return make_error(Errc::kIo, "data_dir",
                      "data directory '" + data_dir + "' is not a directory");
  }
  return {};
}

}  // namespace

core::PgSettings pg_settings(const DatabaseSettings& database) {
  core::PgSettings settings;
  settings.uri = database.uri;
  settings.password = database.password;
  settings.application_name = "tether-hub";
  return settings;
}

Result<std::unique_ptr<core::SqlStore>> open_hub_database(const std::string& data_dir,
                                                          const DatabaseSettings& database,
                                                          SyncMode sync, int busy_timeout_ms) {
  if (database.uri.empty()) {
    TETHER_TRY(store, open_hub_store(data_dir, sync, busy_timeout_ms));
    return std::unique_ptr<core::SqlStore>(std::move(*store));
  }
  if (auto made = make_data_dir(data_dir); !made) return made.error();
  TETHER_TRY(store, open_pg_hub_store(pg_settings(database)));
  return std::unique_ptr<core::SqlStore>(std::move(*store));
}

Result<std::unique_ptr<core::SqliteStore>> open_hub_store(const std::string& data_dir,
                                                          SyncMode sync, int busy_timeout_ms) {
  if (auto made = make_data_dir(data_dir); !made) return made.error();
  core::SqliteStore::Options options;
  options.sync_full = sync == SyncMode::kFull;
  options.busy_timeout_ms = busy_timeout_ms;
  TETHER_TRY(store, core::SqliteStore::open(data_dir + "/hub.db", options));
  const char* const upgrades[] = {
      kUpgradeTo2, kUpgradeTo3, upgrade_to_4().c_str(), upgrade_to_5().c_str(), kUpgradeTo6,
      kUpgradeTo7, kUpgradeTo8, upgrade_to_9().c_str(), kVersion10Tables,       kUpgradeTo11};
  if (auto schema = (*store)->apply_schema(full_schema().c_str(), kHubSchemaVersion, upgrades);
      !schema)
    return schema.error();
  return store;
}

}  // namespace tether::hub
