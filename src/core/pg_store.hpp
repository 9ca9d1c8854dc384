// PgStore: the PostgreSQL engine of SqlStore (sql_store.hpp), on one
// PgConnection used from the loop thread.
//
// - A turn's write transaction is BEGIN ... COMMIT on the connection (READ
//   COMMITTED, PostgreSQL's default); guarded() is a SAVEPOINT in it, as on
//   SQLite. Reads outside a write run in autocommit, each statement its own
//   snapshot.
// - SQL is written with SQLite's placeholders (`?`, `?N`) and rewritten to
//   PostgreSQL's ($1..$n) once per statement, outside string literals and
//   quoted names. Values go as text (integers in decimal) or, for
//   bind_bytes, as binary bytea; rows come back as text, bytea in hex.
// - Busy (SqlError::busy): serialization failure, deadlock, lock not
//   available (SQLSTATE 40001, 40P01, 55P03), and a lost connection: the
//   work can run again later. After a lost connection (a server restart)
//   the next statement outside a transaction connects again. A transaction
//   open at the time is gone: its statements and COMMIT fail (busy), never
//   run on a new connection, and SqlStore reports it lost (on_commit_failed).
// - COMMIT of a transaction an error aborted is a failure here (PostgreSQL
//   itself answers it with ROLLBACK, not an error).
// - Round trips: a guarded block's SAVEPOINT and RELEASE, and writes made
//   with execute_later, are queued on the connection and sent ahead of the
//   next statement (PgConnection::defer); an entry point's queued writes go
//   at its end at the latest, so their errors stay its own. A RELEASE is
//   refused at once when the transaction already failed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/pg_connection.hpp"
#include "core/result.hpp"
#include "core/sql_store.hpp"

namespace tether::core {

// `sql` with `?` and `?N` placeholders as PostgreSQL's `$n` (see above).
std::string pg_placeholders(std::string_view sql);

// `elements` as a text array literal (PostgreSQL docs, "Arrays", 8.15.6),
// to bind as one parameter (`= ANY(?)`, `unnest(?::text[])`): every
// element double-quoted, `"` and `\` escaped, so no element reads as NULL.
// Elements must hold no NUL byte (PostgreSQL's text cannot).
std::string pg_text_array(const std::vector<std::string>& elements);

class PgStore : public SqlStore {
 public:
  struct Options {
    PgSettings settings;
    // While write() has queued work, how often it tries again (ms).
    uint64_t write_retry_ms = 50;
    // After a failed connect, statements fail at once (busy) for this long
    // before the next try: each try blocks the thread for up to
    // settings.connect_timeout_s, which must not happen per statement.
    uint64_t reconnect_backoff_ms = 1000;
  };
  // Connects; an Error as PgConnection::connect.
  static Result<std::unique_ptr<PgStore>> open(Options options);
  ~PgStore() override;

  Query query(const char* sql) override;
  bool concurrent_writers() const override { return true; }

  // The connection, connecting again first if the last one was lost. Throws
  // SqlError (busy) when the server cannot be reached.
  PgConnection& connection();
  // The server process of the current connection (0 while none): what
  // PostgreSQL names as the sender of this store's NOTIFYs.
  int server_pid() const { return connection_ ? connection_->server_pid() : 0; }
  // Connections made since open (1 + reconnects), for monitoring.
  uint64_t connections_made() const { return connections_made_; }
  // Connects tried after a lost connection, made or not.
  uint64_t reconnects_tried() const { return reconnects_tried_; }

 protected:
  void run_control(const char* sql) override;
  // Queued on the connection (PgConnection::defer): SAVEPOINT and RELEASE
  // travel with the next statement instead of a round trip each.
  void defer_control(const char* sql) override;
  // Writes queued by execute_later (PgConnection::defer_prepared) go in one
  // round trip, with the RELEASE queued after them.
  void flush_writes() override;
  void discard_queued_writes() override;
  void begin_transaction() override;
  bool engine_in_transaction() override;
  bool engine_busy(const std::exception& error) const override;

 private:
  PgStore(Options options, std::unique_ptr<PgConnection> connection);
  static Result<std::unique_ptr<PgConnection>> connect(const Options& options);

  Options options_;
  std::unique_ptr<PgConnection> connection_;
  uint64_t connections_made_ = 1;
  // BEGIN ran (or is queued) on connection_ and no COMMIT or ROLLBACK yet:
  // no reconnecting.
  bool transaction_open_ = false;
  bool reconnect_failing_ = false;  // said once per outage
  uint64_t reconnects_tried_ = 0;
  // steady_clock time before which no connect is tried (reconnect_backoff_ms)
  std::chrono::steady_clock::time_point next_reconnect_{};
  std::unordered_map<const char*, std::unique_ptr<SqlStatement>> queries_;
};

// Throws the SqlError for a failed PostgreSQL call (busy for kBusy and
// kUnreachable, see above).
[[noreturn]] void throw_pg_error(const Error& error);

}  // namespace tether::core
