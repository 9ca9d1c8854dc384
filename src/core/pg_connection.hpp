// PgConnection: one connection to a PostgreSQL server through libpq, used
// from one thread at a time. Calls block that thread until the server
// answers (a round trip on loopback: tens of microseconds).
//
// Where the settings come from:
// - the server, user and database: a PostgreSQL connection URI
//   (postgresql://USER@HOST:PORT/DATABASE?sslmode=...; libpq's "Connection
//   URIs", parsed by libpq itself, PQconninfoParse);
// - the password: never in the URI (it would be in argv, visible to every
//   local user in /proc), but PgSettings::password (read from a 0600 file by
//   the caller), or libpq's own PGPASSWORD / PGPASSFILE environment.
//
// Errors (a closed set, as core/result.hpp):
//   kInvalid      the URI does not parse or holds a password
//   kUnauthorized the server refused the user or password (SQLSTATE 28xxx)
//   kUnreachable  no connection, or the connection was lost (restart, kill):
//                 connection_lost() is then true; make a new connection
//   kBusy         serialization failure, deadlock, lock not available
//                 (40001, 40P01, 55P03): the same transaction may succeed
//                 if run again
//   kExists       a unique constraint refused the row (23505)
//   kIo           any other error the server reported
// Every message names the SQLSTATE and the server's text.
#pragma once

#include <libpq-fe.h>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/pg_result.hpp"
#include "core/result.hpp"

namespace tether::core {

struct PgSettings {
  std::string uri;       // postgresql://... without a password
  std::string password;  // empty: libpq's environment or ~/.pgpass decide
  // Shown in pg_stat_activity.application_name.
  std::string application_name = "tether";
  int connect_timeout_s = 10;
  // Unless the URI says otherwise: TCP keepalives after 10 s idle (every 5 s,
  // 3 lost: gone) and tcp_user_timeout 15 s, so a silent peer fails calls in
  // about 25 s at most.
};

// Checks `uri` with libpq's parser: a postgresql:// or postgres:// URI with
// no password in it. `what` names the setting in errors ("--database").
Result<void> check_pg_uri(const std::string& uri, std::string_view what);

// One statement parameter, sent in text format (NULL when absent), or as
// raw bytes for a bytea column (binary format: no escaping).
struct PgParam {
  std::optional<std::string> value;
  bool binary = false;
  static PgParam text(std::string text) { return {std::move(text), false}; }
  static PgParam bytes(std::string bytes) { return {std::move(bytes), true}; }
  static PgParam null() { return {std::nullopt, false}; }
};

// A NOTIFY received on a channel this connection LISTENs to.
struct PgNotification {
  std::string channel;
  std::string payload;
  int sender_pid = 0;
};

class PgConnection {
 public:
  static Result<std::unique_ptr<PgConnection>> connect(const PgSettings& settings);
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs one statement (SQL with $1..$n placeholders) with `params`.
  Result<PgResult> execute(std::string_view sql, std::span<const PgParam> params = {});
  // Prepares `sql` as the named statement of this connection (PQprepare;
  // parameter types inferred by the server), for execute_prepared. Parsed
  // and planned once instead of at every execute.
  Result<void> prepare(const std::string& name, std::string_view sql);
  Result<PgResult> execute_prepared(const std::string& name, std::span<const PgParam> params = {});
  // Runs a script of statements without parameters (DDL, BEGIN, COMMIT).
  Result<void> execute_script(std::string_view sql);

  // Queues a statement whose answer nobody reads, to be sent ahead of the
  // next execute, execute_prepared, execute_script or flush, in the same
  // round trip: libpq's pipeline mode (libpq docs, "Pipeline Mode"). An
  // error of a queued statement is that call's error, named "queued SQL"
  // (the server skips the rest of a pipeline after an error, so that call's
  // own statement did not run).
  // defer: without parameters (SAVEPOINT, RELEASE);
  void defer(std::string sql) { deferred_.push_back({std::move(sql), {}, false, {}}); }
  // defer_prepared: a statement prepared on this connection, with `params`;
  // `on_result` (if set) gets its answer once the whole pipeline it went in
  // succeeded, before that call returns (an INSERT's RETURNING row).
  using ResultHandler = std::function<void(const PgResult&)>;
  void defer_prepared(std::string name, std::vector<PgParam> params, ResultHandler on_result = {}) {
    deferred_.push_back({std::move(name), std::move(params), true, std::move(on_result)});
  }
  // Sends what is queued now and waits for the answers; Errors as execute.
  Result<void> flush();
  // Drops the queued statements unsent: all of them (before a ROLLBACK,
  // which makes them moot and must not be skipped because one failed), or
  // those queued with defer_prepared (before a ROLLBACK TO, which undoes
  // them, while a queued RELEASE or SAVEPOINT decides what it goes back to).
  void discard_deferred() { deferred_.clear(); }
  void discard_deferred_prepared();
  size_t deferred() const { return deferred_.size(); }
  bool deferred_prepared() const;

  // The socket, to watch for readability (uv_poll) while LISTENing.
  int socket() const { return PQsocket(connection_.get()); }
  // Reads what the server sent and returns the notifications received since
  // the last call (possibly none). An Error when the connection is lost.
  Result<std::vector<PgNotification>> take_notifications();

  // True once the server closed the connection or it broke: every later
  // call fails with kUnreachable.
  bool connection_lost() const { return broken_ || PQstatus(connection_.get()) != CONNECTION_OK; }
  // True inside a transaction block that a failed statement aborted: only
  // ROLLBACK (or ROLLBACK TO a savepoint) is accepted.
  bool transaction_failed() const {
    return PQtransactionStatus(connection_.get()) == PQTRANS_INERROR;
  }
  // True inside a transaction block (also one a failed statement aborted).
  bool in_transaction() const {
    const auto status = PQtransactionStatus(connection_.get());
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
  }
  // The server process serving this connection (pg_stat_activity.pid).
  int server_pid() const { return PQbackendPID(connection_.get()); }

 private:
  struct Finish {
    void operator()(PGconn* connection) const { PQfinish(connection); }
  };
  explicit PgConnection(PGconn* connection) : connection_(connection) {}
  Error error_of(const PGresult* result, std::string_view doing) const;
  Result<PgResult> run(const std::string& statement, std::span<const PgParam> params,
                       bool prepared);
  struct Queued {
    std::string statement;  // SQL, or a prepared statement's name
    std::vector<PgParam> params;
    bool prepared = false;
    ResultHandler on_result;
  };
  // The deferred statements, then `last` (if any), in one pipeline; the
  // result of `last` (null without one).
  Result<PGresult*> run_pipelined(const std::string* last, std::span<const PgParam> params,
                                  bool prepared);
  // Sends `statement` (in pipeline mode: queued until the sync).
  bool send(const std::string& statement, std::span<const PgParam> params, bool prepared);
  // Reads the pipeline's sync and leaves pipeline mode; false if libpq
  // cannot (the connection is then treated as lost: broken_).
  bool leave_pipeline();

  std::unique_ptr<PGconn, Finish> connection_;
  std::vector<Queued> deferred_;
  // libpq's state is not what a call left it in (a pipeline that would
  // not end): the connection is not used again.
  bool broken_ = false;
};

}  // namespace tether::core
