#include "hub/run_repository.hpp"

#include "core/wall_clock.hpp"

namespace tether::hub {

namespace {

constexpr const char* kRunColumns =
    "id, state, selector, agents, command_json, max_concurrency, max_errors, canary, "
    "offline_timeout_s, cancel_on_error, lost_is_error, cancelled, stop_reason, created_by, "
    "created_at, finished_at";

std::string text_or_empty(const core::SqlValue& column) {
  return column.isNull() ? std::string() : column.getString();
}

// Agent names are stored space-separated: the name rule has no spaces.
std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  for (size_t at = 0; at < text.size();) {
    const size_t space = std::min(text.find(' ', at), text.size());
    if (space > at) names.push_back(text.substr(at, space - at));
    at = space + 1;
  }
  return names;
}

RunRecord read_run(core::Query& row) {
  RunRecord run;
  run.id = row.getColumn(0).getString();
  run.state = row.getColumn(1).getString();
  run.selector = row.getColumn(2).getString();
  run.agents = split_names(row.getColumn(3).getString());
  run.command_json = row.getColumn(4).getString();
  run.max_concurrency = static_cast<uint64_t>(row.getColumn(5).getInt64());
  if (!row.getColumn(6).isNull())
    run.max_errors = static_cast<uint64_t>(row.getColumn(6).getInt64());
  run.canary = static_cast<uint64_t>(row.getColumn(7).getInt64());
  run.offline_timeout_s = static_cast<uint64_t>(row.getColumn(8).getInt64());
  run.cancel_on_error = row.getColumn(9).getInt() != 0;
  run.lost_is_error = row.getColumn(10).getInt() != 0;
  run.cancelled = row.getColumn(11).getInt() != 0;
  run.stop_reason = text_or_empty(row.getColumn(12));
  run.created_by = row.getColumn(13).getString();
  run.created_at = row.getColumn(14).getString();
  run.finished_at = text_or_empty(row.getColumn(15));
  return run;
}

}  // namespace

void RunRepository::insert(const RunRecord& run) {
  std::string agents;
  for (const auto& name : run.agents)
    agents += (agents.empty() ? "" : " ") + name;
  auto insert = store_.query(
      "INSERT INTO runs (id, state, selector, agents, command_json, max_concurrency, max_errors, "
      "canary, offline_timeout_s, cancel_on_error, lost_is_error, created_by, created_at) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, run.id);
  insert.bind(2, run.state);
  insert.bind(3, run.selector);
  insert.bind(4, agents);
  insert.bind(5, run.command_json);
  insert.bind(6, static_cast<int64_t>(run.max_concurrency));
  if (run.max_errors) {
    insert.bind(7, static_cast<int64_t>(*run.max_errors));
  } else {
    insert.bind(7);
  }
  insert.bind(8, static_cast<int64_t>(run.canary));
  insert.bind(9, static_cast<int64_t>(run.offline_timeout_s));
  insert.bind(10, run.cancel_on_error ? 1 : 0);
  insert.bind(11, run.lost_is_error ? 1 : 0);
  insert.bind(12, run.created_by);
  insert.bind(13, run.created_at);
  insert.exec();
}

std::optional<RunRecord> RunRepository::find(const std::string& id) {
  static const std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?";
  auto query = store_.query(sql.c_str());
  query.bind(1, id);
  if (!query.executeStep()) return std::nullopt;
  return read_run(query);
}

void RunRepository::lock(const std::string& id) {
  store_.begin_write();
  auto query =
      store_.query(store_.concurrent_writers() ? "SELECT id FROM runs WHERE id = ? FOR UPDATE"
                                               : "SELECT id FROM runs WHERE id = ?");
  query.bind(1, id);
  query.executeStep();
}

std::vector<RunRecord> RunRepository::list(const std::string& state, const std::string& before,
                                           int limit) {
  static const NewestFirstPages pages(kRunColumns, "runs");
  auto query = store_.query(pages.sql(!state.empty(), !before.empty()));
  int index = 1;
  if (!state.empty()) query.bind(index++, state);
  if (!before.empty()) query.bind(index++, before);
  query.bind(index, limit);
  std::vector<RunRecord> runs;
  while (query.executeStep())
    runs.push_back(read_run(query));
  return runs;
}

std::vector<std::string> RunRepository::running_ids() {
  auto query = store_.query("SELECT id FROM runs WHERE state = 'running'");
  std::vector<std::string> ids;
  while (query.executeStep())
    ids.push_back(query.getColumn(0).getString());
  return ids;
}

void RunRepository::set_stop_reason(const std::string& id, const std::string& reason,
                                    bool cancelled) {
  store_.execute("UPDATE runs SET stop_reason = ?, cancelled = ? WHERE id = ?", reason,
                 cancelled ? 1 : 0, id);
}

void RunRepository::finish(const std::string& id, const std::string& state) {
  store_.execute("UPDATE runs SET state = ?, finished_at = ? WHERE id = ?", state, core::utc_now(),
                 id);
}

namespace {

// The decision fields of a row whose first columns are id, agent, state,
// held, released_at_ms.
RunTaskRow decision_fields(core::Query& query) {
  RunTaskRow row;
  row.task_id = query.getColumn(0).getString();
  row.agent = query.getColumn(1).getString();
  row.state = parse_task_state(query.getColumn(2).getString()).value_or(TaskState::kFailed);
  row.held = query.getColumn(3).getInt() != 0;
  if (!query.getColumn(4).isNull()) row.released_at_ms = query.getColumn(4).getInt64();
  return row;
}

}  // namespace

std::vector<RunTaskRow> RunRepository::tasks_of(const std::string& run_id) {
  auto query = store_.query(
      "SELECT id, agent, state, held, released_at_ms, final_json, updated_at, cancel_reason "
      "FROM tasks "
      "WHERE run_id = ? ORDER BY rowid");
  query.bind(1, run_id);
  std::vector<RunTaskRow> rows;
  while (query.executeStep()) {
    RunTaskRow row = decision_fields(query);
    row.final_json = text_or_empty(query.getColumn(5));
    row.updated_at = query.getColumn(6).getString();
    row.note = text_or_empty(query.getColumn(7));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<RunTaskRow> RunRepository::decision_rows(const std::string& run_id, uint64_t limit,
                                                     bool held_queued_only) {
  // LIMIT -1 is SQLite's "no limit", which PostgreSQL refuses: a count
  // larger than any run instead.
  auto query =
      store_.query(held_queued_only ? "SELECT id, agent, state, held, released_at_ms FROM tasks "
                                      "WHERE run_id = ? AND held = 1 AND state = 'queued' "
                                      "ORDER BY rowid LIMIT ?"
                                    : "SELECT id, agent, state, held, released_at_ms FROM tasks "
                                      "WHERE run_id = ? ORDER BY rowid LIMIT ?");
  query.bind(1, run_id);
  query.bind(2, static_cast<int64_t>(limit == 0 ? INT64_MAX : limit));
  std::vector<RunTaskRow> rows;
  while (query.executeStep())
    rows.push_back(decision_fields(query));
  return rows;
}

std::map<std::pair<TaskState, bool>, uint64_t> RunRepository::counts_of(const std::string& run_id) {
  auto query =
      store_.query("SELECT state, held, count(*) FROM tasks WHERE run_id = ? GROUP BY state, held");
  query.bind(1, run_id);
  std::map<std::pair<TaskState, bool>, uint64_t> counts;
  while (query.executeStep()) {
    const auto state =
        parse_task_state(query.getColumn(0).getString()).value_or(TaskState::kFailed);
    counts[{state, query.getColumn(1).getInt() != 0}] +=
        static_cast<uint64_t>(query.getColumn(2).getInt64());
  }
  return counts;
}

void RunRepository::release(const std::string& task_id, int64_t now_ms) {
  store_.execute("UPDATE tasks SET held = 0, released_at_ms = ? WHERE id = ?", now_ms, task_id);
}

}  // namespace tether::hub
