#include "core/pg_store.hpp"

#include <vector>

#include "core/log.hpp"
#include "core/pg_result.hpp"

namespace tether::core {

std::string pg_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 0;
  char quote = 0;  // inside '...' or "...": copied as it is
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (quote) {
      out.push_back(c);
      if (c == quote) quote = 0;  // a doubled quote closes and reopens: same result
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      out.push_back(c);
      continue;
    }
    if (c != '?') {
      out.push_back(c);
      continue;
    }
    size_t digits = i + 1;
    while (digits < sql.size() && sql[digits] >= '0' && sql[digits] <= '9')
      ++digits;
    out.push_back('$');
    if (digits > i + 1) {
      out.append(sql.substr(i + 1, digits - i - 1));
      i = digits - 1;
    } else {
      out += std::to_string(++next);
    }
  }
  return out;
}

std::string pg_text_array(const std::vector<std::string>& elements) {
  std::string array = "{";
  for (const auto& element : elements) {
    if (array.size() > 1) array += ',';
    array += '"';
    for (const char c : element) {
      if (c == '"' || c == '\\') array += '\\';
      array += c;
    }
    array += '"';
  }
  array += '}';
  return array;
}

void throw_pg_error(const Error& error) {
  throw SqlError(error.message, error.kind == Errc::kBusy || error.kind == Errc::kUnreachable);
}

namespace {

// The first row of a queued statement's answer (exec_later's on_row).
class PgFirstRow final : public SqlRow {
 public:
  explicit PgFirstRow(const PgResult& result) : result_(result) {}
  bool is_null(int column) override { return result_.is_null(0, column); }
  std::string text(int column) override { return std::string(result_.text(0, column)); }
  int64_t int64(int column) override { return result_.int64(0, column); }
  std::string bytes(int column) override { return result_.bytes(0, column); }

 private:
  const PgResult& result_;
};

// One statement: parameters gathered by the binds, sent at the first step
// (PQexecParams), rows read from the result.
class PgQueryStatement final : public SqlStatement {
 public:
  PgQueryStatement(PgStore& store, const char* sql, std::string name)
      : store_(store), sql_(pg_placeholders(sql)), name_(std::move(name)) {}

  void bind_text(int index, std::string_view text) override {
    slot(index) = PgParam::text(std::string(text));
  }
  void bind_int64(int index, int64_t value) override {
    slot(index) = PgParam::text(std::to_string(value));
  }
  void bind_null(int index) override { slot(index) = PgParam::null(); }
  void bind_bytes(int index, std::string_view bytes) override {
    slot(index) = PgParam::bytes(std::string(bytes));
  }
  bool step() override {
    if (!result_) run();
    return ++row_ < result_->rows();
  }
  int64_t exec() override {
    run();
    return result_->changed_rows();
  }
  void exec_later() override {
    PgConnection& connection = prepared_connection();
    connection.defer_prepared(name_, std::move(params_));
    params_.clear();
  }
  void exec_later(const std::function<void(SqlRow&)>& on_row) override {
    PgConnection& connection = prepared_connection();
    auto answered = [on_row, sql = sql_](const PgResult& result) {
      if (result.rows() == 0) throw std::logic_error("no row answered by " + sql);
      PgFirstRow row(result);
      on_row(row);
    };
    connection.defer_prepared(name_, std::move(params_), std::move(answered));
    params_.clear();
  }
  bool is_null(int column) override { return current().is_null(row_, column); }
  std::string text(int column) override {
    return is_null(column) ? std::string() : std::string(current().text(row_, column));
  }
  int64_t int64(int column) override { return current().int64(row_, column); }
  std::string bytes(int column) override { return current().bytes(row_, column); }
  void reset() override {
    result_.reset();
    row_ = -1;
    params_.clear();
  }

 private:
  PgParam& slot(int index) {
    if (index < 1) throw std::logic_error("PgStore: parameter index " + std::to_string(index));
    if (params_.size() < static_cast<size_t>(index)) params_.resize(index, PgParam::null());
    return params_[static_cast<size_t>(index - 1)];
  }
  void run() {
    result_.reset();
    row_ = -1;
    auto result = prepared_connection().execute_prepared(name_, params_);
    if (!result) throw_pg_error(result.error());
    result_.emplace(std::move(*result));
  }
  PgConnection& prepared_connection() {
    PgConnection& connection = store_.connection();
    // Prepared once per connection (a new one after a restart knows none).
    if (prepared_on_ != store_.connections_made()) {
      if (auto prepared = connection.prepare(name_, sql_); !prepared)
        throw_pg_error(prepared.error());
      prepared_on_ = store_.connections_made();
    }
    return connection;
  }
  const PgResult& current() {
    if (!result_ || row_ < 0 || row_ >= result_->rows())
      throw std::logic_error("PgStore: no current row for " + sql_);
    return *result_;
  }

  PgStore& store_;
  std::string sql_;
  std::string name_;
  uint64_t prepared_on_ = 0;  // connections_made() when prepared; 0: not yet
  std::vector<PgParam> params_;
  std::optional<PgResult> result_;
  int row_ = -1;
};

std::string described(const PgSettings& settings) {
  return "postgresql " + settings.uri;
}

}  // namespace

PgStore::PgStore(Options options, std::unique_ptr<PgConnection> connection)
    : SqlStore(described(options.settings), Timing{options.write_retry_ms, 0}),
      options_(std::move(options)),
      connection_(std::move(connection)) {}

PgStore::~PgStore() {
  flush_queued_writes();
  queries_.clear();
}

Result<std::unique_ptr<PgConnection>> PgStore::connect(const Options& options) {
  return PgConnection::connect(options.settings);
}

Result<std::unique_ptr<PgStore>> PgStore::open(Options options) {
  TETHER_TRY(connection, connect(options));
  return std::unique_ptr<PgStore>(new PgStore(std::move(options), std::move(*connection)));
}

PgConnection& PgStore::connection() {
  if (connection_ && !connection_->connection_lost()) return *connection_;
  // Inside a transaction a new connection would run the rest of the turn's
  // writes outside it (each committed on its own) and COMMIT nothing: the
  // transaction is gone, and SqlStore learns so (engine_in_transaction).
  if (transaction_open_)
    throw SqlError(name() + ": the connection was lost inside a transaction", true);
  const auto now = std::chrono::steady_clock::now();
  if (now < next_reconnect_)
    throw SqlError(name() + ": not connected (the last try failed; trying again soon)", true);
  ++reconnects_tried_;
  auto fresh = connect(options_);
  if (!fresh) {
    next_reconnect_ = now + std::chrono::milliseconds(options_.reconnect_backoff_ms);
    // Once per outage: every statement until the server is back fails so.
    if (!reconnect_failing_) {
      log_warning("store", name() +
                               ": cannot connect again (work is retried, requests get 503 "
                               "until it can): " +
                               fresh.error().message);
      reconnect_failing_ = true;
    }
    throw_pg_error(fresh.error());
  }
  connection_ = std::move(*fresh);
  ++connections_made_;
  reconnect_failing_ = false;
  log_info("store", name() + ": connected again");
  return *connection_;
}

Query PgStore::query(const char* sql) {
  auto& slot = queries_[sql];
  if (!slot) {
    slot =
        std::make_unique<PgQueryStatement>(*this, sql, "tether_" + std::to_string(queries_.size()));
  }
  slot->reset();
  return Query(*slot);
}

void PgStore::run_control(const char* sql) {
  const std::string_view statement(sql);
  if (statement == "COMMIT" || statement == "ROLLBACK") {
    const bool lost = !connection_ || connection_->connection_lost();
    const bool aborted = !lost && connection_->transaction_failed();
    transaction_open_ = false;
    if (statement == "ROLLBACK") {
      if (!lost) {
        connection_->discard_deferred();         // moot, and one failing would skip the ROLLBACK
        (void)connection_->execute_script(sql);  // a lost one took it along
      }
      return;
    }
    if (lost) throw SqlError(name() + ": the connection was lost before COMMIT", true);
    if (aborted) {
      // PostgreSQL answers COMMIT of an aborted transaction with a rollback,
      // not an error: say so, or the turn's actions would run.
      connection_->discard_deferred();
      (void)connection_->execute_script("ROLLBACK");
      throw SqlError(name() + ": the transaction was aborted by an earlier error", false);
    }
  }
  auto done = connection().execute_script(sql);
  if (!done) throw_pg_error(done.error());
}

void PgStore::defer_control(const char* sql) {
  PgConnection& current = connection();
  // Run at once, it would fail now: a RELEASE must not look done when the
  // block it ends broke the transaction (by a statement whose error was
  // caught), or the block would keep its after-commit actions.
  if (current.transaction_failed())
    throw SqlError(name() + ": " + sql + ": the transaction was aborted by an earlier error",
                   false);
  current.defer(sql);
}

void PgStore::flush_writes() {
  if (!connection_ || !connection_->deferred_prepared()) return;
  if (auto sent = connection().flush(); !sent) throw_pg_error(sent.error());
}

void PgStore::discard_queued_writes() {
  if (connection_) connection_->discard_deferred_prepared();
}

void PgStore::begin_transaction() {
  // Connects again here if the connection was lost (outside a transaction
  // that is allowed), so that a server that is down says so at once. The
  // BEGIN itself travels with the transaction's first statement: nothing
  // waits for its answer, and it can only fail with the connection, which
  // that statement then meets.
  connection().defer("BEGIN");
  transaction_open_ = true;
}

bool PgStore::engine_in_transaction() {
  if (transaction_open_ && (!connection_ || connection_->connection_lost()))
    transaction_open_ = false;  // gone with the connection
  if (!transaction_open_) return false;
  // Open on the server, or nothing of it sent yet: its BEGIN is still queued
  // (a pipeline sends everything queued, so a queue left means none went).
  return connection_->in_transaction() || connection_->deferred() > 0;
}

bool PgStore::engine_busy(const std::exception&) const {
  return false;
}

}  // namespace tether::core
