// SqliteStore: one SQLite database used from the loop thread, with group
// commit; the transaction rules are SqlStore's (sql_store.hpp).
//
// Invariants:
// - A cached statement is used through a ScopedStatement, which resets it
//   when the scope ends. A statement stepped and not reset keeps its read
//   transaction (and an old snapshot) open: writes by other processes stay
//   invisible, and BEGIN IMMEDIATE then fails with "database is locked"
//   (SQLITE_BUSY_SNAPSHOT) until something resets it.
// - Another process may hold the write lock (sqlite3, `tether-hub token
//   admin`). BEGIN IMMEDIATE then waits busy_timeout_ms at most and reports
//   SQLITE_BUSY; that is never fatal. guarded() turns it into Outcome::kBusy
//   for an entry point to retry; write() queues the work and retries it in
//   order.
// - Every entry point (an HTTP request, a WebSocket message, a timer, an
//   after-commit action) runs its storage work through guarded() or write():
//   no SQLite exception reaches the loop.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/disk_reserve.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/sql_store.hpp"
#include "core/timer.hpp"

namespace tether::core {

// True for SQLITE_BUSY and SQLITE_LOCKED (and their extended codes): another
// connection holds a lock. Retrying later can succeed.
bool is_busy(const SQLite::Exception& error);

// A cached prepared statement in use (see SqliteStore::statement). The
// statement is reset and its bindings cleared when the scope ends, which
// ends any read transaction it holds. Not copyable, not to be kept.
class ScopedStatement {
 public:
  explicit ScopedStatement(SQLite::Statement& statement) : statement_(&statement) {}
  ScopedStatement(ScopedStatement&& other) noexcept
      : statement_(std::exchange(other.statement_, nullptr)) {}
  ScopedStatement(const ScopedStatement&) = delete;
  ScopedStatement& operator=(const ScopedStatement&) = delete;
  ScopedStatement& operator=(ScopedStatement&&) = delete;
  ~ScopedStatement();

  SQLite::Statement& operator*() { return *statement_; }
  SQLite::Statement* operator->() { return statement_; }
  operator SQLite::Statement&() { return *statement_; }  // NOLINT: for row readers

  template <class... Args>
  void bind(Args&&... args) {
    statement_->bind(std::forward<Args>(args)...);
  }
  template <class... Args>
  void bindNoCopy(Args&&... args) {
    statement_->bindNoCopy(std::forward<Args>(args)...);
  }
  // Binds `values` to parameters 1..N in order: strings as text, integers
  // (bool as 0/1), std::nullopt and empty optionals as NULL.
  template <class... Values>
  void bind_all(const Values&... values) {
    int index = 0;
    (bind_value(++index, values), ...);
  }
  bool executeStep() { return statement_->executeStep(); }
  int exec() { return statement_->exec(); }
  SQLite::Column getColumn(int index) { return statement_->getColumn(index); }
  // Between uses of one statement in a loop: ends the row, keeps the scope.
  void reset() { statement_->reset(); }

 private:
  void bind_value(int index, const std::string& value) { statement_->bind(index, value); }
  void bind_value(int index, const char* value) { statement_->bind(index, value); }
  void bind_value(int index, int value) { statement_->bind(index, value); }
  void bind_value(int index, int64_t value) { statement_->bind(index, value); }
  void bind_value(int index, uint64_t value) {
    statement_->bind(index, static_cast<int64_t>(value));
  }
  void bind_value(int index, bool value) { statement_->bind(index, value ? 1 : 0); }
  void bind_value(int index, std::nullopt_t) { statement_->bind(index); }
  template <class T>
  void bind_value(int index, const std::optional<T>& value) {
    if (value) {
      bind_value(index, *value);
    } else {
      statement_->bind(index);
    }
  }

  SQLite::Statement* statement_;
};

// The SQLite engine of SqlStore (WAL mode, so other processes, sqlite3 or a
// CLI tool, can read and write while we run; the write lock is taken by
// BEGIN IMMEDIATE and waits busy_timeout_ms at most). Besides query(), code
// that only ever runs on SQLite (the agent) uses statement(), SQLiteCpp's
// own Statement.
class SqliteStore : public SqlStore {
 public:
  struct Options {
    // Every commit fsynced (survives power loss); otherwise WAL's NORMAL mode
    // (survives a crash of this process; an OS crash may lose the last commits).
    bool sync_full = false;
    // The WAL is cut back to this size after a checkpoint (journal_size_limit).
    int64_t wal_size_limit = 16 << 20;
    // A commit that leaves the WAL this many pages long runs a checkpoint
    // (wal_autocheckpoint; SQLite's default is 1,000). Each checkpoint copies
    // every page in the WAL once and fsyncs: pages rewritten by many commits
    // (a busy index) are copied once per checkpoint, not once per commit.
    int wal_autocheckpoint_pages = 1000;
    // SQLite rolls a transaction back when its COMMIT finds the disk full, so
    // a full disk would lose that turn's writes. With this set, a file of
    // this size (path + ".reserve") holds space back; just before a commit on
    // a disk with less than this free, the file is deleted so the commit
    // fits, and it is made again once three times as much is free.
    uint64_t disk_reserve_bytes = 0;
    // How long BEGIN IMMEDIATE waits for another process's write lock before
    // it reports busy (SQLite's busy timeout, milliseconds). The loop thread
    // waits this long at most, so keep it short: busy work is retried.
    int busy_timeout_ms = 50;
    // While write() has queued work, how often it tries the lock again (ms).
    uint64_t write_retry_ms = 50;
    // Group commit under load (ms; 0: every turn). Once three commits in a
    // row each came within this long of the one before (sustained writes),
    // a transaction opened sooner than this after the last commit commits
    // once this long has passed since it, gathering the writes of the turns
    // between; otherwise it commits at the end of its turn, as always, so
    // occasional writes are never delayed. Under a stream of writes that makes one commit
    // (one WAL append of each page touched, and fewer checkpoints) per
    // interval instead of one per turn, for at most this much added delay.
    uint64_t group_commit_ms = 0;
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
  ~SqliteStore() override;

  // Brings the database to schema `version`, in one transaction: a new
  // database gets `schema` (idempotent CREATE ... IF NOT EXISTS statements);
  // one at an older version first runs `upgrades[v - 1]` for each version v
  // it is behind (upgrades[0] turns version 1 into 2). A database from a
  // newer program is refused, untouched.
  Result<void> apply_schema(const char* schema, int version,
                            std::span<const char* const> upgrades = {});

  SQLite::Database& database() { return *database_; }
  const std::string& path() const { return path_; }

  Query query(const char* sql) override;
  // A prepared statement for `sql`, compiled once, in use until the returned
  // scope ends (then reset). Keyed by the pointer: pass string literals or
  // strings that live forever. One use at a time per statement.
  ScopedStatement statement(const char* sql);
  // Runs `sql` (a cached statement, see statement()) inside the turn's write
  // transaction with `values` bound in order (ScopedStatement::bind_all).
  // Returns the rows it changed. Throws SQLite::Exception, as begin_write.
  template <class... Values>
  int execute(const char* sql, const Values&... values) {
    begin_write();
    auto statement = this->statement(sql);
    statement.bind_all(values...);
    return statement.exec();
  }

 protected:
  void run_control(const char* sql) override;
  void begin_transaction() override;
  bool engine_in_transaction() override;
  bool engine_busy(const std::exception& error) const override;
  void before_engine_commit() override { reserve_.guard(); }

 private:
  SqliteStore(std::unique_ptr<SQLite::Database> database, std::string path, Options options);

  std::unique_ptr<SQLite::Database> database_;
  std::string path_;
  Options options_;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements_;
  std::unordered_map<const char*, std::unique_ptr<SqlStatement>> queries_;
  DiskReserve reserve_;
};

}  // namespace tether::core
