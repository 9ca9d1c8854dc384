// SqlStore: a relational database used from the loop thread, whatever the
// engine (SQLite: sqlite_store.hpp; PostgreSQL: pg_store.hpp), with the
// transaction rules every user of it relies on.
//
// Writes made during one loop turn share one transaction (begin_write opens
// it); it commits on the next turn (or, under load, with group_commit_ms,
// once per interval), and only then run the actions queued with
// after_commit() (an ack, a reply, a send), so nothing leaves the process
// before it is stored.
//
// Invariants:
// - A statement is used through a Query, which ends its row (reset) when the
//   scope ends: no read stays open between turns.
// - Another process or hub may hold a lock. begin_write() then throws a
//   busy error; guarded() turns it into Outcome::kBusy for an entry point to
//   retry; write() queues the work and retries it in order.
// - Every entry point (an HTTP request, a WebSocket message, a timer, an
//   after-commit action) runs its storage work through guarded() or write():
//   no storage exception reaches the loop.
// - SQL is written once for both engines: `?` placeholders bound 1..N in
//   order (or `?N`), standard SQL that SQLite and PostgreSQL read alike
//   (ON CONFLICT, RETURNING, COALESCE). Integers are bound as 64-bit, text as
//   UTF-8, bytes with bind_bytes (BLOB / bytea).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/timer.hpp"

namespace tether::core {

// A storage error, as an exception inside an entry point's work. `busy`: a
// lock held elsewhere, or a transaction the engine asks to run again
// (PostgreSQL's serialization failure or deadlock): retrying can succeed.
class SqlError : public std::runtime_error {
 public:
  SqlError(const std::string& what, bool busy) : std::runtime_error(what), busy_(busy) {}
  bool busy() const { return busy_; }

 private:
  bool busy_;
};

// One row of a statement's answer. Columns are 0-based, as in SQLite's C
// API.
class SqlRow {
 public:
  virtual ~SqlRow() = default;
  virtual bool is_null(int column) = 0;
  virtual std::string text(int column) = 0;   // "" for NULL
  virtual int64_t int64(int column) = 0;      // 0 for NULL
  virtual std::string bytes(int column) = 0;  // BLOB / bytea; "" for NULL
};

// One statement of an engine, as Query drives it; its current row is the
// SqlRow it is. Parameters are 1-based, as in SQLite's C API.
class SqlStatement : public SqlRow {
 public:
  virtual void bind_text(int index, std::string_view text) = 0;
  virtual void bind_int64(int index, int64_t value) = 0;
  virtual void bind_null(int index) = 0;
  // Not copied by every engine: `bytes` must live until the statement ran.
  virtual void bind_bytes(int index, std::string_view bytes) = 0;
  // Moves to the next row; false once there is none (the statement ran).
  virtual bool step() = 0;
  // Runs a statement that returns no rows; returns the rows it changed.
  virtual int64_t exec() = 0;
  // Runs it as exec() does, or, on an engine whose statements are round
  // trips, queues it to go with a later one (SqlStore::execute_later).
  virtual void exec_later() { exec(); }
  // exec_later for a statement that answers one row (INSERT ... RETURNING):
  // `on_row` gets that row once the statement ran, at once or (PostgreSQL)
  // when it is sent with a later statement: before that one's answer is
  // read, so by the end of the entry point (SqlStore::execute_later) at the
  // latest. A statement that fails, or is dropped with its entry point's
  // writes, never calls it. No row: std::logic_error, or that later call's
  // error.
  virtual void exec_later(const std::function<void(SqlRow&)>& on_row) {
    if (!step()) throw std::logic_error("a statement queued for its row answered none");
    on_row(*this);
  }
  // Ends the row and clears the bindings: the statement can be used again.
  virtual void reset() = 0;
};

// One column of the current row (Query::getColumn). Names follow SQLiteCpp,
// whose Column this replaces for code that runs on both engines.
class SqlValue {
 public:
  SqlValue(SqlStatement& statement, int index) : statement_(statement), index_(index) {}
  bool isNull() const { return statement_.is_null(index_); }
  std::string getString() const { return statement_.text(index_); }
  int64_t getInt64() const { return statement_.int64(index_); }
  int getInt() const { return static_cast<int>(statement_.int64(index_)); }
  std::string getBytes() const { return statement_.bytes(index_); }

 private:
  SqlStatement& statement_;
  int index_;
};

// A statement in use (SqlStore::query): reset when the scope ends. Not
// copyable, not to be kept past the loop turn.
class Query {
 public:
  explicit Query(SqlStatement& statement) : statement_(&statement) {}
  Query(Query&& other) noexcept : statement_(std::exchange(other.statement_, nullptr)) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  Query& operator=(Query&&) = delete;
  ~Query();

  void bind(int index, const std::string& value) { statement_->bind_text(index, value); }
  void bind(int index, const char* value) { statement_->bind_text(index, value); }
  void bind(int index, int value) { statement_->bind_int64(index, value); }
  void bind(int index, int64_t value) { statement_->bind_int64(index, value); }
  void bind(int index, uint64_t value) {
    statement_->bind_int64(index, static_cast<int64_t>(value));
  }
  void bind(int index, bool value) { statement_->bind_int64(index, value ? 1 : 0); }
  void bind(int index, std::nullopt_t) { statement_->bind_null(index); }
  void bind(int index) { statement_->bind_null(index); }
  template <class T>
  void bind(int index, const std::optional<T>& value) {
    if (value) {
      bind(index, *value);
    } else {
      statement_->bind_null(index);
    }
  }
  // Raw bytes (a BLOB column in SQLite, bytea in PostgreSQL), which must
  // live until the statement has run (step or exec): SQLite reads them then.
  void bind_bytes(int index, std::string_view bytes) { statement_->bind_bytes(index, bytes); }
  // Binds `values` to parameters 1..N in order: strings as text, integers
  // (bool as 0/1), std::nullopt and empty optionals as NULL.
  template <class... Values>
  void bind_all(const Values&... values) {
    int index = 0;
    (bind(++index, values), ...);
  }
  bool executeStep() { return statement_->step(); }
  int exec() { return static_cast<int>(statement_->exec()); }
  void exec_later() { statement_->exec_later(); }
  void exec_later(const std::function<void(SqlRow&)>& on_row) { statement_->exec_later(on_row); }
  SqlValue getColumn(int index) { return SqlValue(*statement_, index); }
  // Between uses of one statement in a loop: ends the row, keeps the scope.
  void reset() { statement_->reset(); }

 private:
  SqlStatement* statement_;
};

class SqlStore {
 public:
  SqlStore(const SqlStore&) = delete;
  SqlStore& operator=(const SqlStore&) = delete;
  virtual ~SqlStore();

  // What the store is, for messages: a file's path, a database's URI.
  const std::string& name() const { return name_; }

  // A statement for `sql`, prepared once per store and kept; in use until
  // the returned scope ends. Keyed by the pointer: pass string literals or
  // strings that live forever. One use at a time per statement.
  virtual Query query(const char* sql) = 0;
  // Runs `sql` (see query()) inside the turn's write transaction with
  // `values` bound in order (Query::bind_all). Returns the rows it changed.
  // Throws as begin_write.
  template <class... Values>
  int execute(const char* sql, const Values&... values) {
    begin_write();
    auto statement = query(sql);
    statement.bind_all(values...);
    return statement.exec();
  }

  // execute() for a write whose row count nobody reads. An engine whose
  // statements are round trips (PostgreSQL) sends it with the next
  // statement, or by the end of the entry point (guarded(), write()) or
  // the commit, whichever comes first: its error is then that one's, in
  // the same entry point. Throws as begin_write, or with an error of a
  // write queued before.
  template <class... Values>
  void execute_later(const char* sql, const Values&... values) {
    begin_write();
    auto statement = query(sql);
    statement.bind_all(values...);
    statement.exec_later();
  }

  // Sends the statements execute_later queued now, not with the next one
  // (PostgreSQL: one round trip; nothing on an engine that runs them at
  // once): for what needs their answers before a statement of its own
  // (SqlStatement::exec_later's on_row). Throws as a statement, with their
  // error.
  void send_queued() { flush_writes(); }

  // True if other processes can write while this store's transaction is
  // open (PostgreSQL: row locks); false if a transaction holds the whole
  // database (SQLite's write lock). SQL that claims a row picks its form by
  // this (e.g. FOR UPDATE SKIP LOCKED, which SQLite does not read).
  virtual bool concurrent_writers() const { return false; }

  // Group commit. Without a loop, call commit() yourself.
  void attach_loop(Loop& loop);
  // Opens the turn's write transaction if none is open. Throws SqlError (or
  // the engine's exception); is_busy() tells a lock held elsewhere.
  void begin_write();
  bool in_transaction() const { return in_transaction_; }
  // Write transactions begun so far: tells one turn's transaction from the
  // next (state kept for a commit that failed is stale in the next one).
  uint64_t transactions_begun() const { return transactions_begun_; }
  // Runs `action` once the current transaction has committed (at once if
  // none is open).
  void after_commit(std::function<void()> action);
  // Runs just before the turn's transaction commits (to flush state that is
  // cheaper to write once per turn than once per change), in the order
  // queued. Dropped with the writes of a guarded() block that fails. An
  // action may queue more: they run after every action queued before them.
  void before_commit(std::function<void()> action) { before_commit_.push_back(std::move(action)); }
  // Commits now. On failure the transaction is rolled back, the queued
  // actions are dropped and on_commit_failed runs.
  Result<void> commit();
  void set_on_commit_failed(std::function<void(const Error&)> handler) {
    on_commit_failed_ = std::move(handler);
  }

  // --- error boundaries ---

  enum class Outcome { kDone, kBusy, kFailed };
  // Runs one entry point's storage work. Its writes are kept or dropped
  // together (a savepoint inside the turn's transaction), and so are the
  // after-commit actions it queued. A lock held elsewhere gives kBusy
  // (nothing kept: retry later); any other storage error (or a broken
  // invariant, std::exception) gives kFailed and is logged with `what`.
  // Nested calls run inside the outermost one.
  Outcome guarded(std::string_view what, const std::function<void()>& work);

  // Runs `work` inside the turn's write transaction. If another process
  // holds the write lock, the work is queued and retried every
  // write_retry_ms, in order with later writes; readers of in-memory state
  // built by `work` see it only once it ran. A storage error other than
  // busy inside `work` is fatal: on_fatal runs.
  void write(std::function<void()> work);
  // Writes queued for the lock.
  size_t writes_waiting() const { return queued_writes_.size(); }
  // Runs each time queued writes have been applied.
  void set_on_writes_applied(std::function<void()> handler) {
    on_writes_applied_ = std::move(handler);
  }
  void set_on_fatal(std::function<void(const std::string& why)> handler) {
    on_fatal_ = std::move(handler);
  }
  // Runs a read outside write(). True once it ran; false if a lock held
  // elsewhere stopped it (on_read_busy runs, so that whoever waits can read
  // again later). Any other storage error is fatal, as in write(); `what`
  // names the read in the message.
  bool try_read(std::string_view what, const std::function<void()>& read);
  void set_on_read_busy(std::function<void()> handler) { on_read_busy_ = std::move(handler); }

  // True if `error` says a lock is held elsewhere (retrying can succeed).
  bool is_busy(const std::exception& error) const;

 protected:
  struct Timing {
    // While write() has queued work, how often it tries the lock again (ms).
    uint64_t write_retry_ms = 50;
    // Group commit under load (ms; 0: every turn); see SqliteStore::Options.
    uint64_t group_commit_ms = 0;
  };
  SqlStore(std::string name, Timing timing) : name_(std::move(name)), timing_(timing) {}

  // --- what an engine provides ---
  // Runs a statement without parameters or rows (BEGIN, SAVEPOINT, ...).
  virtual void run_control(const char* sql) = 0;
  // Runs such a statement (SAVEPOINT, RELEASE) no later than the next
  // statement of the transaction: an engine whose statements are round
  // trips sends it with that one, whose error its error then is. Throws as
  // run_control (at once if the transaction is known to have failed).
  virtual void defer_control(const char* sql) { run_control(sql); }
  // Sends the writes execute_later queued, and waits for their answers: at
  // the end of an entry point, whose error theirs are. Throws as a statement.
  virtual void flush_writes() {}
  // Drops the writes execute_later queued and has not sent: the entry
  // point failed, and the ROLLBACK TO its savepoint that comes next undoes
  // them anyway (one of them failing would keep that from running).
  // Statements defer_control queued stay queued: they must run.
  virtual void discard_queued_writes() {}
  // Opens a write transaction (SQLite: BEGIN IMMEDIATE, taking the lock).
  virtual void begin_transaction() = 0;
  // True while the engine has a transaction open: false after an error that
  // made the engine roll everything back by itself.
  virtual bool engine_in_transaction() = 0;
  // The engine's own exception type says busy.
  virtual bool engine_busy(const std::exception& error) const = 0;
  // Just before COMMIT (SQLite: give back the disk reserve).
  virtual void before_engine_commit() {}

  // For an engine's destructor: apply queued writes while it still can.
  void flush_queued_writes();
  bool try_begin_write();
  void run_write(const std::function<void()>& work);

 private:
  struct GuardFrame {
    size_t after_mark = 0;
    size_t before_mark = 0;
    bool savepoint = false;
  };
  // Commits at the end of this turn, or once group_commit_ms has passed
  // since the last commit.
  void schedule_commit();
  // Leaves the transaction state as the engine has it after an error that
  // may have rolled everything back.
  void after_failed_statement(const std::string& why);
  void retry_queued_writes();
  void fatal(const std::string& why);

  std::string name_;
  Timing timing_;
  Loop* loop_ = nullptr;
  bool in_transaction_ = false;
  uint64_t transactions_begun_ = 0;
  std::vector<std::function<void()>> before_commit_;
  std::vector<std::function<void()>> after_commit_;
  std::function<void(const Error&)> on_commit_failed_;
  GuardFrame* guard_ = nullptr;
  uint64_t busy_until_ms_ = 0;  // loop time; begin_write says busy until then
  std::deque<std::function<void()>> queued_writes_;
  std::unique_ptr<Timer> retry_timer_;
  std::unique_ptr<Timer> commit_timer_;  // group commit
  uint64_t last_commit_ms_ = 0;          // loop time of the last commit, 0 before one
  // Commits in a row that each came within group_commit_ms of the one
  // before; from kSustainedCommits on, the next one waits for the interval.
  uint64_t close_commits_ = 0;
  static constexpr uint64_t kSustainedCommits = 3;
  std::function<void()> on_writes_applied_;
  std::function<void(const std::string&)> on_fatal_;
  std::function<void()> on_read_busy_;
};

}  // namespace tether::core
