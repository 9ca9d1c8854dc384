#include "core/pg_connection.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/log.hpp"

namespace tether::core {
namespace {

struct ConninfoFree {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};

// One line: the server's DETAIL and HINT lines joined with "; ".
std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
    text.pop_back();
  for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at))
    text.replace(at, 1, "; ");
  return text;
}

// What the server says outside a result (NOTICE, WARNING, and the FATAL
// message of a connection it terminates) goes to our log, one line each,
// not to stderr as libpq's default processor writes it.
void log_notice(void*, const char* message) {
  log_warning("postgresql", trimmed(message));
}

Errc kind_of_sqlstate(std::string_view state) {
  if (state.starts_with("28")) return Errc::kUnauthorized;  // invalid authorization
  if (state == "40001" || state == "40P01" || state == "55P03") return Errc::kBusy;
  if (state == "23505") return Errc::kExists;
  if (state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03")
    return Errc::kUnreachable;  // connection exception; admin or crash shutdown
  return Errc::kIo;
}

std::string code_of(Errc kind) {
  switch (kind) {
    case Errc::kUnauthorized:
      return "database_unauthorized";
    case Errc::kBusy:
      return "database_busy";
    case Errc::kExists:
      return "database_conflict";
    case Errc::kUnreachable:
      return "database_unreachable";
    default:
      return "database_error";
  }
}

}  // namespace

Result<void> check_pg_uri(const std::string& uri, std::string_view what) {
  if (!uri.starts_with("postgresql://") && !uri.starts_with("postgres://"))
    return make_error(Errc::kInvalid, "invalid_database",
                      std::string(what) + ": expected a postgresql:// URI");
  char* parse_error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFree> options(
      PQconninfoParse(uri.c_str(), &parse_error));
  if (!options) {
    std::string why = trimmed(parse_error);
    PQfreemem(parse_error);
    return make_error(Errc::kInvalid, "invalid_database", std::string(what) + ": " + why);
  }
  for (const PQconninfoOption* option = options.get(); option->keyword; ++option) {
    if (std::string_view(option->keyword) == "password" && option->val && *option->val)
      return make_error(Errc::kInvalid, "invalid_database",
                        std::string(what) +
                            ": the URI holds a password, which would be visible in the process "
                            "list; put it in a file (0600) or PGPASSWORD instead");
  }
  return {};
}

Result<std::unique_ptr<PgConnection>> PgConnection::connect(const PgSettings& settings) {
  TETHER_TRY(checked, check_pg_uri(settings.uri, "database URI"));
  const std::string timeout = std::to_string(settings.connect_timeout_s);
  // Before dbname, so that the URI's own settings win (libpq: values from
  // an expanded dbname override earlier keywords): a peer that vanishes
  // without a FIN (a partition, a dead host) is noticed in tens of seconds
  // rather than the kernel's minutes, as every call here blocks its thread.
  std::vector<const char*> keywords = {
      "keepalives",       "keepalives_idle",  "keepalives_interval",
      "keepalives_count", "tcp_user_timeout", "dbname",
      "application_name", "connect_timeout",  "client_encoding"};
  std::vector<const char*> values = {"1",
                                     "10",
                                     "5",
                                     "3",
                                     "15000",
                                     settings.uri.c_str(),
                                     settings.application_name.c_str(),
                                     timeout.c_str(),
                                     "UTF8"};
  if (!settings.password.empty()) {
    keywords.push_back("password");
    values.push_back(settings.password.c_str());
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  std::unique_ptr<PGconn, Finish> connection(
      PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1));
  if (!connection) return make_error(Errc::kIo, "database_error", "libpq: out of memory");
  if (PQstatus(connection.get()) != CONNECTION_OK) {
    const std::string why = trimmed(PQerrorMessage(connection.get()));
    // libpq reports a refused password only in its text (there is no
    // result to read a SQLSTATE from).
    const bool refused = why.find("password authentication failed") != std::string::npos ||
                         why.find("no password supplied") != std::string::npos;
    const Errc kind = refused ? Errc::kUnauthorized : Errc::kUnreachable;
    return make_error(kind, code_of(kind), "PostgreSQL: " + why);
  }
  PQsetNoticeProcessor(connection.get(), &log_notice, nullptr);
  return std::unique_ptr<PgConnection>(new PgConnection(connection.release()));
}

Error PgConnection::error_of(const PGresult* result, std::string_view doing) const {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  Errc kind = state ? kind_of_sqlstate(state) : Errc::kIo;
  if (connection_lost()) kind = Errc::kUnreachable;
  const std::string text =
      trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(connection_.get()));
  std::string message = "PostgreSQL";
  if (state) message += " " + std::string(state);
  message += " (" + std::string(doing) + "): " + text;
  return make_error(kind, code_of(kind), std::move(message));
}

Result<PgResult> PgConnection::execute(std::string_view sql, std::span<const PgParam> params) {
  return run(std::string(sql), params, false);
}

Result<void> PgConnection::prepare(const std::string& name, std::string_view sql) {
  const std::string statement(sql);
  PGresult* result = PQprepare(connection_.get(), name.c_str(), statement.c_str(), 0, nullptr);
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK) {
    Error error = error_of(result, "preparing a statement");
    PQclear(result);
    return error;
  }
  PQclear(result);
  return {};
}

Result<PgResult> PgConnection::execute_prepared(const std::string& name,
                                                std::span<const PgParam> params) {
  return run(name, params, true);
}

namespace {

// A statement's parameters as libpq takes them.
struct ParamArrays {
  explicit ParamArrays(std::span<const PgParam> params)
      : values(params.size()), lengths(params.size()), formats(params.size()) {
    for (size_t i = 0; i < params.size(); ++i) {
      values[i] = params[i].value ? params[i].value->data() : nullptr;
      lengths[i] = params[i].value ? static_cast<int>(params[i].value->size()) : 0;
      formats[i] = params[i].binary ? 1 : 0;
    }
  }
  int count() const { return static_cast<int>(values.size()); }
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
};

bool succeeded(ExecStatusType status) {
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

}  // namespace

bool PgConnection::send(const std::string& statement, std::span<const PgParam> params,
                        bool prepared) {
  const ParamArrays arrays(params);
  return (prepared ? PQsendQueryPrepared(connection_.get(), statement.c_str(), arrays.count(),
                                         arrays.values.data(), arrays.lengths.data(),
                                         arrays.formats.data(), /*resultFormat=*/0)
                   : PQsendQueryParams(connection_.get(), statement.c_str(), arrays.count(),
                                       nullptr, arrays.values.data(), arrays.lengths.data(),
                                       arrays.formats.data(), /*resultFormat=*/0)) != 0;
}

Result<PgResult> PgConnection::run(const std::string& statement, std::span<const PgParam> params,
                                   bool prepared) {
  if (!deferred_.empty()) {
    TETHER_TRY(answer, run_pipelined(&statement, params, prepared));
    return PgResult(*answer);
  }
  const ParamArrays arrays(params);
  PGresult* result =
      prepared ? PQexecPrepared(connection_.get(), statement.c_str(), arrays.count(),
                                arrays.values.data(), arrays.lengths.data(), arrays.formats.data(),
                                /*resultFormat=*/0)
               : PQexecParams(connection_.get(), statement.c_str(), arrays.count(), nullptr,
                              arrays.values.data(), arrays.lengths.data(), arrays.formats.data(),
                              /*resultFormat=*/0);
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (!succeeded(status)) {
    Error error = error_of(result, "a statement");
    PQclear(result);
    return error;
  }
  return PgResult(result);
}

Result<PGresult*> PgConnection::run_pipelined(const std::string* last,
                                              std::span<const PgParam> params, bool prepared) {
  const std::vector<Queued> ahead = std::move(deferred_);
  deferred_.clear();
  PGconn* connection = connection_.get();
  if (PQenterPipelineMode(connection) == 0) {
    // libpq refuses only a connection that is busy or bad: the queued
    // statements cannot go, and what the transaction holds is unknown.
    broken_ = true;
    return error_of(nullptr, "entering pipeline mode");
  }
  bool sent = true;
  for (const auto& queued : ahead)
    sent = sent && send(queued.statement, queued.params, queued.prepared);
  if (last) sent = sent && send(*last, params, prepared);
  sent = sent && PQpipelineSync(connection) != 0;
  if (!sent) {
    // Some of it may be queued without a sync: no result can be waited for.
    broken_ = true;
    return error_of(nullptr, "sending a pipeline");
  }
  std::optional<Error> failed;
  PGresult* answer = nullptr;
  std::vector<std::pair<size_t, PgResult>> handled;  // answers of queued statements that want them
  const size_t statements = ahead.size() + (last ? 1 : 0);
  // Each statement's results end with a null; a statement after a failed
  // one gives PGRES_PIPELINE_ABORTED. A lost connection gives nulls.
  for (size_t i = 0; i < statements && !connection_lost(); ++i) {
    while (PGresult* result = PQgetResult(connection)) {
      const ExecStatusType status = PQresultStatus(result);
      if (status == PGRES_FATAL_ERROR && !failed) {
        failed =
            error_of(result, i < ahead.size() ? "queued " + ahead[i].statement : "a statement");
      }
      if (i == ahead.size() && succeeded(status) && !answer) {
        answer = result;
      } else if (i < ahead.size() && ahead[i].on_result && succeeded(status)) {
        handled.emplace_back(i, PgResult(result));
      } else {
        PQclear(result);
      }
    }
  }
  if (!leave_pipeline() && !failed) failed = error_of(nullptr, "ending a pipeline");
  if (!failed && last && !answer)
    failed = error_of(nullptr, "a pipelined statement gave no result");
  if (failed) {
    PQclear(answer);
    return std::move(*failed);
  }
  // Only now: a statement queued later, or `last`, could still have failed
  // the pipeline, and an entry point that fails gets no answers.
  try {
    for (const auto& [index, result] : handled)
      ahead[index].on_result(result);
  } catch (const std::exception& e) {  // an answer its handler did not expect
    PQclear(answer);
    return make_error(Errc::kIo, "database_error", "queued SQL: " + std::string(e.what()));
  }
  return answer;
}

Result<void> PgConnection::flush() {
  if (deferred_.empty()) return {};
  TETHER_TRY(none, run_pipelined(nullptr, {}, false));
  return {};
}

void PgConnection::discard_deferred_prepared() {
  std::erase_if(deferred_, [](const Queued& queued) { return queued.prepared; });
}

bool PgConnection::deferred_prepared() const {
  return std::any_of(deferred_.begin(), deferred_.end(),
                     [](const Queued& queued) { return queued.prepared; });
}

bool PgConnection::leave_pipeline() {
  PGconn* connection = connection_.get();
  // Up to the sync's result (every statement's results were read before).
  // A null where the sync belongs means libpq holds no more results: the
  // pipeline cannot end normally.
  while (!connection_lost()) {
    PGresult* result = PQgetResult(connection);
    if (!result) break;
    const bool sync = PQresultStatus(result) == PGRES_PIPELINE_SYNC;
    PQclear(result);
    if (sync) break;
  }
  if (!connection_lost() && PQexitPipelineMode(connection) != 0) return true;
  // Only a broken connection leaves libpq unable to end the pipeline: this
  // one is done with either way (PgStore connects again).
  broken_ = true;
  return false;
}

Result<void> PgConnection::execute_script(std::string_view sql) {
  std::string script;
  if (deferred_prepared()) {
    // Statements with parameters need the extended protocol: the script
    // goes in the pipeline too, as one statement (COMMIT, ROLLBACK TO ...).
    script = sql;
    TETHER_TRY(answer, run_pipelined(&script, {}, false));
    PQclear(*answer);
    return {};
  }
  for (const auto& queued : deferred_)
    script += queued.statement + "; ";
  deferred_.clear();
  script += sql;
  PGresult* result = PQexec(connection_.get(), script.c_str());
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (!succeeded(status)) {
    Error error = error_of(result, "a script");
    PQclear(result);
    return error;
  }
  PQclear(result);
  return {};
}

Result<std::vector<PgNotification>> PgConnection::take_notifications() {
  if (PQconsumeInput(connection_.get()) == 0)
    return make_error(
        Errc::kUnreachable, "database_unreachable",
        "PostgreSQL (reading notifications): " + trimmed(PQerrorMessage(connection_.get())));
  if (connection_lost())
    return make_error(Errc::kUnreachable, "database_unreachable",
                      "PostgreSQL (reading notifications): the connection was closed");
  std::vector<PgNotification> received;
  while (PGnotify* notify = PQnotifies(connection_.get())) {
    received.push_back(
        PgNotification{notify->relname, notify->extra ? notify->extra : "", notify->be_pid});
    PQfreemem(notify);
  }
  return received;
}

}  // namespace tether::core
