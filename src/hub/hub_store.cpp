#include "hub/hub_store.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/log.hpp"

namespace tether::hub {

namespace {

// Version 1 of the schema. Column names are meant to be read by operators
// with sqlite3; times are UTC text ("2026-11-22T05:12:00.123Z").
constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS agents (
  name               TEXT PRIMARY KEY,
  token_sha256       TEXT NOT NULL,
  created_at         TEXT NOT NULL,
  last_seen_at       TEXT,
  version            TEXT,
  outbox_rows        INTEGER,
  outbox_bytes       INTEGER,
  outbox_reported_at TEXT
);

CREATE TABLE IF NOT EXISTS admin_tokens (
  token_sha256 TEXT PRIMARY KEY,
  created_at   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tasks (
  id                 TEXT PRIMARY KEY,
  agent              TEXT NOT NULL,
  state              TEXT NOT NULL,
  command_json       TEXT NOT NULL,
  env_json           TEXT NOT NULL,
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
  lost_reason       TEXT
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
  stored_at_us   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream
  ON events (attempt_id, stream, seq) WHERE stream IS NOT NULL;
)SQL";

}  // namespace

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HubStore::HubStore(std::unique_ptr<SQLite::Database> database, std::string path)
    : database_(std::move(database)), path_(std::move(path)) {}

HubStore::~HubStore() {
  if (in_transaction_) (void)commit();
  statements_.clear();
}

Result<std::unique_ptr<HubStore>> HubStore::open(const std::string& data_dir, SyncMode sync) {
  if (::mkdir(data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error("data_dir",
                      "cannot create data directory '" + data_dir + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(data_dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return make_error("data_dir", "data directory '" + data_dir + "' is not a directory");
  }
  const std::string path = data_dir + "/hub.db";
  try {
    auto database = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX);
    database->setBusyTimeout(5000);
    database->exec("PRAGMA journal_mode=WAL");
    database->exec(sync == SyncMode::kFull ? "PRAGMA synchronous=FULL"
                                           : "PRAGMA synchronous=NORMAL");
    database->exec("PRAGMA foreign_keys=ON");
    std::unique_ptr<HubStore> store(new HubStore(std::move(database), path));
    if (auto schema = store->apply_schema(); !schema) return schema.error();
    ::chmod(path.c_str(), 0600);
    return store;
  } catch (const SQLite::Exception& e) {
    return make_error("database", "cannot open '" + path + "': " + e.what());
  }
}

Result<void> HubStore::apply_schema() {
  try {
    SQLite::Transaction transaction(*database_);
    database_->exec(kSchema);
    SQLite::Statement version(*database_, "SELECT version FROM schema_version");
    if (!version.executeStep()) {
      database_->exec("INSERT INTO schema_version (version) VALUES (1)");
    } else if (version.getColumn(0).getInt() != 1) {
      return make_error("database", path_ + " has schema version " +
                                        std::to_string(version.getColumn(0).getInt()) +
                                        "; this tether-hub understands version 1");
    }
    transaction.commit();
    return {};
  } catch (const SQLite::Exception& e) {
    return make_error("database", "cannot create the schema in '" + path_ + "': " + e.what());
  }
}

SQLite::Statement& HubStore::statement(const char* sql) {
  auto& slot = statements_[sql];
  if (!slot) slot = std::make_unique<SQLite::Statement>(*database_, sql);
  slot->reset();
  slot->clearBindings();
  return *slot;
}

void HubStore::begin_write() {
  if (in_transaction_) return;
  database_->exec("BEGIN IMMEDIATE");
  in_transaction_ = true;
  if (loop_) {
    loop_->defer([this] { (void)commit(); });
  }
}

void HubStore::after_commit(std::function<void()> action) {
  if (!in_transaction_) {
    action();
    return;
  }
  after_commit_.push_back(std::move(action));
}

Result<void> HubStore::commit() {
  if (!in_transaction_) return {};
  in_transaction_ = false;
  try {
    database_->exec("COMMIT");
  } catch (const SQLite::Exception& e) {
    Error error = make_error("storage_unavailable", std::string("commit failed: ") + e.what());
    try {
      database_->exec("ROLLBACK");
    } catch (const SQLite::Exception&) {
      // Already rolled back by SQLite (a failed COMMIT may do so itself).
    }
    after_commit_.clear();
    core::log_error("store", error.message);
    if (on_commit_failed_) on_commit_failed_(error);
    return error;
  }
  auto actions = std::move(after_commit_);
  after_commit_.clear();
  for (auto& action : actions)
    action();
  return {};
}

}  // namespace tether::hub
