// HubStore: the hub's SQLite database (hub.db in the data directory).
//
// WAL mode, so `tether-hub agent add` can write while the hub serves and
// operators can read with sqlite3 at any time. Writes made during one loop
// turn share one transaction (group commit); it commits on the next turn,
// and only then run the actions queued with after_commit() — acks to agents
// and events to subscribers — so nothing is acknowledged or shown before it
// is stored.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/loop.hpp"
#include "core/result.hpp"

namespace tether::hub {

enum class SyncMode { kNormal, kFull };

class HubStore {
 public:
  // Creates the directory (0700) and the schema if needed.
  static Result<std::unique_ptr<HubStore>> open(const std::string& data_dir, SyncMode sync);
  HubStore(const HubStore&) = delete;
  HubStore& operator=(const HubStore&) = delete;
  ~HubStore();

  SQLite::Database& database() { return *database_; }

  // A prepared statement for `sql`, compiled once and reset for each use.
  SQLite::Statement& statement(const char* sql);

  // Group commit. Without a loop (the CLI tools), call commit() yourself.
  void attach_loop(core::Loop& loop) { loop_ = &loop; }
  // Opens the turn's transaction if none is open.
  void begin_write();
  // Runs `action` once the current transaction has committed (at once if
  // none is open).
  void after_commit(std::function<void()> action);
  // Commits now. On failure the transaction is rolled back, the queued
  // actions are dropped and on_commit_failed runs.
  Result<void> commit();
  void set_on_commit_failed(std::function<void(const Error&)> handler) {
    on_commit_failed_ = std::move(handler);
  }

  const std::string& path() const { return path_; }

 private:
  explicit HubStore(std::unique_ptr<SQLite::Database> database, std::string path);
  Result<void> apply_schema();

  std::unique_ptr<SQLite::Database> database_;
  std::string path_;
  core::Loop* loop_ = nullptr;
  bool in_transaction_ = false;
  std::vector<std::function<void()>> after_commit_;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements_;
  std::function<void(const Error&)> on_commit_failed_;
};

// Milliseconds since the epoch (wall clock), for lease arithmetic in SQL.
int64_t wall_clock_ms();

}  // namespace tether::hub
