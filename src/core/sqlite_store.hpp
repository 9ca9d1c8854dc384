// SqliteStore: one SQLite database used from the loop thread, with group
// commit.
//
// WAL mode, so other processes (sqlite3, a CLI tool) can read, and write,
// while we run. Writes made during one loop turn share one transaction
// (begin_write opens it); it commits on the next turn, and only then run the
// actions queued with after_commit() — an ack, a reply, a send — so nothing
// leaves the process before it is stored.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/loop.hpp"
#include "core/result.hpp"

namespace tether::core {

class SqliteStore {
 public:
  struct Options {
    // Every commit fsynced (survives power loss); otherwise WAL's NORMAL mode
    // (survives a crash of this process; an OS crash may lose the last commits).
    bool sync_full = false;
    // The WAL is cut back to this size after a checkpoint (journal_size_limit).
    int64_t wal_size_limit = 16 << 20;
    // SQLite rolls a transaction back when its COMMIT finds the disk full, so
    // a full disk would lose that turn's writes. With this set, a file of
    // this size (path + ".reserve") holds space back; just before a commit on
    // a disk with less than this free, the file is deleted so the commit
    // fits, and it is made again once three times as much is free.
    uint64_t disk_reserve_bytes = 0;
  };
  // Opens (creating) `path` with mode 0600.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, Options options);
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, bool sync_full) {
    Options options;
    options.sync_full = sync_full;
    return open(path, options);
  }

  // Outside a transaction: rebuilds the database without its free pages
  // (VACUUM) and truncates the WAL after a full checkpoint. Cheap when little
  // is stored, and costs fsyncs: for after a large backlog has drained, not
  // for every commit. Errors (a reader holding the file) are logged, not
  // fatal: the data is intact either way.
  void reclaim_space();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore();

  // Brings the database to schema `version`, in one transaction: a new
  // database gets `schema` (idempotent CREATE ... IF NOT EXISTS statements);
  // one at an older version first runs `upgrades[v - 1]` for each version v
  // it is behind (upgrades[0] turns version 1 into 2). A database from a
  // newer program is refused, untouched.
  Result<void> apply_schema(const char* schema, int version,
                            std::span<const char* const> upgrades = {});

  SQLite::Database& database() { return *database_; }
  const std::string& path() const { return path_; }

  // A prepared statement for `sql`, compiled once and reset for each use.
  // Keyed by the pointer: pass string literals or strings that live forever.
  // Every commit resets them all (release_reads), so use one within a turn.
  SQLite::Statement& statement(const char* sql);
  // Resets every cached statement. A SELECT stepped but not reset keeps a
  // read transaction open, and while one is open SQLite cannot start the
  // WAL from its beginning again: under steady writes the WAL file grows
  // without bound (seen filling the outbox's disk in a chaos run).
  void release_reads();

  // Group commit. Without a loop, call commit() yourself.
  void attach_loop(Loop& loop) { loop_ = &loop; }
  void begin_write();
  bool in_transaction() const { return in_transaction_; }
  // Runs `action` once the current transaction has committed (at once if
  // none is open).
  void after_commit(std::function<void()> action);
  // Runs just before the turn's transaction commits (to flush state that is
  // cheaper to write once per turn than once per change).
  void before_commit(std::function<void()> action) { before_commit_.push_back(std::move(action)); }
  // Commits now. On failure the transaction is rolled back, the queued
  // actions are dropped and on_commit_failed runs.
  Result<void> commit();
  void set_on_commit_failed(std::function<void(const Error&)> handler) {
    on_commit_failed_ = std::move(handler);
  }

 private:
  SqliteStore(std::unique_ptr<SQLite::Database> database, std::string path, Options options);
  // Before each commit, when a reserve is configured (see Options).
  void guard_disk_space();
  bool make_reserve();

  std::unique_ptr<SQLite::Database> database_;
  std::string path_;
  Loop* loop_ = nullptr;
  bool in_transaction_ = false;
  std::vector<std::function<void()>> before_commit_;
  std::vector<std::function<void()>> after_commit_;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements_;
  std::function<void(const Error&)> on_commit_failed_;
  uint64_t reserve_bytes_ = 0;
  std::string reserve_path_;
  std::string directory_;
  bool reserve_held_ = false;
};

}  // namespace tether::core
