#include "core/sqlite_store.hpp"

#include <sys/stat.h>

#include "core/log.hpp"

namespace tether::core {

SqliteStore::SqliteStore(std::unique_ptr<SQLite::Database> database, std::string path)
    : database_(std::move(database)), path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  if (in_transaction_) (void)commit();
  statements_.clear();
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, Options options) {
  try {
    auto database = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX);
    ::chmod(path.c_str(), 0600);
    database->setBusyTimeout(5000);
    database->exec("PRAGMA journal_mode=WAL");
    database->exec(options.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    database->exec("PRAGMA journal_size_limit=" + std::to_string(options.wal_size_limit));
    database->exec("PRAGMA foreign_keys=ON");
    return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(database), path));
  } catch (const SQLite::Exception& e) {
    return make_error("database", "cannot open '" + path + "': " + e.what());
  }
}

void SqliteStore::reclaim_space() {
  if (in_transaction_) return;
  try {
    database_->exec("VACUUM");
    database_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const SQLite::Exception& e) {
    log_warning("sqlite", path_ + ": reclaiming free space failed: " + e.what());
  }
}

Result<void> SqliteStore::apply_schema(const char* schema, int version) {
  try {
    SQLite::Transaction transaction(*database_);
    database_->exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    database_->exec(schema);
    SQLite::Statement current(*database_, "SELECT version FROM schema_version");
    if (!current.executeStep()) {
      database_->exec("INSERT INTO schema_version (version) VALUES (" + std::to_string(version) +
                      ")");
    } else if (current.getColumn(0).getInt() != version) {
      return make_error("database", path_ + " has schema version " +
                                        std::to_string(current.getColumn(0).getInt()) +
                                        "; this program understands version " +
                                        std::to_string(version));
    }
    transaction.commit();
    return {};
  } catch (const SQLite::Exception& e) {
    return make_error("database", "cannot create the schema in '" + path_ + "': " + e.what());
  }
}

SQLite::Statement& SqliteStore::statement(const char* sql) {
  auto& slot = statements_[sql];
  if (!slot) slot = std::make_unique<SQLite::Statement>(*database_, sql);
  slot->reset();
  slot->clearBindings();
  return *slot;
}

void SqliteStore::begin_write() {
  if (in_transaction_) return;
  database_->exec("BEGIN IMMEDIATE");
  in_transaction_ = true;
  if (loop_) loop_->defer([this] { (void)commit(); });
}

void SqliteStore::after_commit(std::function<void()> action) {
  if (!in_transaction_) {
    action();
    return;
  }
  after_commit_.push_back(std::move(action));
}

Result<void> SqliteStore::commit() {
  if (!in_transaction_) return {};
  try {
    // Flushers may write (within this transaction) but must not queue more.
    auto flushers = std::move(before_commit_);
    before_commit_.clear();
    for (auto& flush : flushers)
      flush();
    in_transaction_ = false;
    database_->exec("COMMIT");
  } catch (const SQLite::Exception& e) {
    in_transaction_ = false;
    Error error = make_error("storage_unavailable", path_ + ": commit failed: " + e.what());
    try {
      database_->exec("ROLLBACK");
    } catch (const SQLite::Exception&) {
      // Already rolled back by SQLite (a failed COMMIT may do so itself).
    }
    after_commit_.clear();
    log_error("store", error.message);
    if (on_commit_failed_) on_commit_failed_(error);
    return error;
  }
  auto actions = std::move(after_commit_);
  after_commit_.clear();
  for (auto& action : actions)
    action();
  return {};
}

}  // namespace tether::core
