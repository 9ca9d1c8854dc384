#include "hub/task_repository.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/wall_clock.hpp"
#include "protocol/json_reader.hpp"

namespace tether::hub {

namespace {

// Empty text is stored as NULL.
std::optional<std::string> non_empty(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return text;
}

constexpr const char* kTaskColumns =
    "id, agent, state, command_json, env_json, cwd, timeout_s, target, max_attempts, "
    "attempts_made, current_attempt, cancel_requested, cancel_reason, final_json, "
    "output_verified, verification_error, created_at, updated_at, secret_names, limits_json, "
    "selector, run_id, held";

// Secret names are stored space-separated: the name rule has no spaces.
std::string joined_names(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names)
    text += (text.empty() ? "" : " ") + name;
  return text;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  for (size_t at = 0; at < text.size();) {
    const size_t space = std::min(text.find(' ', at), text.size());
    if (space > at) names.push_back(text.substr(at, space - at));
    at = space + 1;
  }
  return names;
}

std::string text_or_empty(const core::SqlValue& column) {
  return column.isNull() ? std::string() : column.getString();
}

// `first`: the column the task's columns start at (0, or after an attempt's).
TaskRecord read_task(core::Query& row, int first = 0) {
  TaskRecord task;
  task.id = row.getColumn(first + 0).getString();
  task.agent = row.getColumn(first + 1).getString();
  task.state = parse_task_state(row.getColumn(first + 2).getString()).value_or(TaskState::kFailed);
  task.command_json = row.getColumn(first + 3).getString();
  task.env_json = row.getColumn(first + 4).getString();
  task.cwd = row.getColumn(first + 5).getString();
  task.timeout_s = static_cast<uint64_t>(row.getColumn(first + 6).getInt64());
  task.target = row.getColumn(first + 7).getString();
  task.max_attempts = row.getColumn(first + 8).getInt();
  task.attempts_made = row.getColumn(first + 9).getInt();
  task.current_attempt = text_or_empty(row.getColumn(first + 10));
  task.cancel_requested = row.getColumn(first + 11).getInt() != 0;
  task.cancel_reason = text_or_empty(row.getColumn(first + 12));
  task.final_json = text_or_empty(row.getColumn(first + 13));
  if (!row.getColumn(first + 14).isNull())
    task.output_verified = row.getColumn(first + 14).getInt() != 0;
  task.verification_error = text_or_empty(row.getColumn(first + 15));
  task.created_at = row.getColumn(first + 16).getString();
  task.updated_at = row.getColumn(first + 17).getString();
  task.secret_names = split_names(row.getColumn(first + 18).getString());
  // Written by insert_task from validated limits; "{}" reads as none.
  if (auto limits = protocol::read_limits_json(row.getColumn(first + 19).getString())) {
    task.limits = *limits;
  }
  task.selector = row.getColumn(first + 20).getString();
  task.run_id = row.getColumn(first + 21).getString();
  task.held = row.getColumn(first + 22).getInt() != 0;
  return task;
}

constexpr const char* kAttemptColumns =
    "id, task_id, agent, number, state, dispatched_at, dispatched_at_ms, started_at, "
    "finished_at, pid, final_json, final_fingerprint, lost_reason, agent_instance";

AttemptState parse_attempt_state(const std::string& text) {
  if (text == "running") return AttemptState::kRunning;
  if (text == "finished") return AttemptState::kFinished;
  if (text == "lost") return AttemptState::kLost;
  return AttemptState::kDispatched;
}

AttemptRecord read_attempt(core::Query& row) {
  AttemptRecord attempt;
  attempt.id = row.getColumn(0).getString();
  attempt.task_id = row.getColumn(1).getString();
  attempt.agent = row.getColumn(2).getString();
  attempt.number = row.getColumn(3).getInt();
  attempt.state = parse_attempt_state(row.getColumn(4).getString());
  attempt.dispatched_at = row.getColumn(5).getString();
  attempt.dispatched_at_ms = row.getColumn(6).getInt64();
  attempt.started_at = text_or_empty(row.getColumn(7));
  attempt.finished_at = text_or_empty(row.getColumn(8));
  attempt.pid = row.getColumn(9).isNull() ? 0 : row.getColumn(9).getInt();
  attempt.final_json = text_or_empty(row.getColumn(10));
  attempt.final_fingerprint = text_or_empty(row.getColumn(11));
  attempt.lost_reason = text_or_empty(row.getColumn(12));
  attempt.agent_instance = text_or_empty(row.getColumn(13));
  return attempt;
}

// "a, b" -> "alias.a, alias.b": a column list for a join.
std::string qualified(const char* columns, const std::string& alias) {
  std::string out;
  const std::string list(columns);
  for (size_t at = 0; at < list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const size_t from = list.find_first_not_of(' ', at);
    out += (out.empty() ? "" : ", ") + alias + "." + list.substr(from, comma - from);
    at = comma + 1;
  }
  return out;
}

std::vector<AttemptRecord> read_attempts(core::Query& query) {
  std::vector<AttemptRecord> attempts;
  while (query.executeStep())
    attempts.push_back(read_attempt(query));
  return attempts;
}

}  // namespace

std::string_view to_string(AttemptState state) {
  switch (state) {
    case AttemptState::kDispatched:
      return "dispatched";
    case AttemptState::kRunning:
      return "running";
    case AttemptState::kFinished:
      return "finished";
    case AttemptState::kLost:
      return "lost";
  }
  return "dispatched";
}

void TaskRepository::insert_task(const TaskRecord& task) {
  store_.begin_write();
  auto insert = store_.query(
      "INSERT INTO tasks (id, agent, state, command_json, env_json, cwd, timeout_s, target, "
      "max_attempts, created_at, updated_at, secret_names, limits_json, selector, run_id, held) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, task.id);
  insert.bind(2, task.agent);
  insert.bind(3, std::string(to_string(task.state)));
  insert.bind(4, task.command_json);
  insert.bind(5, task.env_json);
  insert.bind(6, task.cwd);
  insert.bind(7, static_cast<int64_t>(task.timeout_s));
  insert.bind(8, task.target);
  insert.bind(9, task.max_attempts);
  insert.bind(10, task.created_at);
  insert.bind(11, task.updated_at);
  insert.bind(12, joined_names(task.secret_names));
  insert.bind(13, protocol::limits_json(task.limits));
  insert.bind(14, task.selector);
  insert.bind(15, task.run_id);
  insert.bind(16, task.held ? 1 : 0);
  insert.exec();
}

std::optional<TaskRecord> TaskRepository::find_task(const std::string& id) {
  static const std::string sql = std::string("SELECT ") + kTaskColumns + " FROM tasks WHERE id = ?";
  auto query = store_.query(sql.c_str());
  query.bind(1, id);
  if (!query.executeStep()) return std::nullopt;
  return read_task(query);
}

std::vector<TaskRecord> TaskRepository::list_tasks(
    const std::string& state, const std::string& before, int limit,
    const std::function<bool(const std::string& agent)>& visible) {
  static const NewestFirstPages pages(kTaskColumns, "tasks");
  auto query = store_.query(pages.sql(!state.empty(), !before.empty()));
  int index = 1;
  if (!state.empty()) query.bind(index++, state);
  if (!before.empty()) query.bind(index++, before);
  // Filtered, the rows are read until `limit` of them passed (no LIMIT:
  // the largest, as both engines take no negative one).
  query.bind(index, visible ? std::numeric_limits<int64_t>::max() : int64_t{limit});
  std::vector<TaskRecord> tasks;
  while (static_cast<int>(tasks.size()) < limit && query.executeStep()) {
    TaskRecord task = read_task(query);
    if (!visible || visible(task.agent)) tasks.push_back(std::move(task));
  }
  return tasks;
}

std::vector<TaskRecord> TaskRepository::queued_tasks(const std::string& agent, bool with_pool) {
  static const std::string own = std::string("SELECT ") + kTaskColumns +
                                 " FROM tasks WHERE agent = ? AND state = 'queued' AND held = 0 "
                                 "ORDER BY created_at, rowid";
  static const std::string pooled = std::string("SELECT ") + kTaskColumns +
                                    " FROM tasks WHERE agent IN (?, '') AND state = 'queued' "
                                    "AND held = 0 ORDER BY created_at, rowid";
  auto query = store_.query(with_pool ? pooled.c_str() : own.c_str());
  query.bind(1, agent);
  std::vector<TaskRecord> tasks;
  while (query.executeStep())
    tasks.push_back(read_task(query));
  return tasks;
}

bool TaskRepository::claim(const char* row_locked, const char* database_locked,
                           const std::string& id) {
  store_.begin_write();
  auto query = store_.query(store_.concurrent_writers() ? row_locked : database_locked);
  query.bind(1, id);
  return query.executeStep();
}

bool TaskRepository::claim_queued(const std::string& id) {
  return claim("SELECT id FROM tasks WHERE id = ? AND state = 'queued' FOR UPDATE SKIP LOCKED",
               "SELECT id FROM tasks WHERE id = ? AND state = 'queued'", id);
}

bool TaskRepository::claim_active_attempt(const std::string& id) {
  return claim(
      "SELECT id FROM attempts WHERE id = ? AND state IN ('dispatched', 'running') FOR UPDATE "
      "SKIP LOCKED",
      "SELECT id FROM attempts WHERE id = ? AND state IN ('dispatched', 'running')", id);
}

std::vector<std::string> TaskRepository::queued_pool_selectors() {
  auto query =
      store_.query("SELECT DISTINCT selector FROM tasks WHERE agent = '' AND state = 'queued'");
  std::vector<std::string> selectors;
  while (query.executeStep())
    selectors.push_back(query.getColumn(0).getString());
  return selectors;
}

void TaskRepository::assign_agent(const std::string& id, const std::string& agent) {
  store_.execute("UPDATE tasks SET agent = ? WHERE id = ?", agent, id);
}

std::vector<TargetHolder> TaskRepository::target_holders(const std::string& agent,
                                                         bool with_queued) {
  auto query = store_.query(
      with_queued ? "SELECT id, target FROM tasks WHERE agent = ? AND target != '' AND state IN "
                    "('queued', 'dispatched', 'running') ORDER BY created_at, rowid"
                  : "SELECT id, target FROM tasks WHERE agent = ? AND target != '' AND state IN "
                    "('dispatched', 'running') ORDER BY created_at, rowid");
  query.bind(1, agent);
  std::vector<TargetHolder> holders;
  while (query.executeStep())
    holders.push_back({query.getColumn(0).getString(), query.getColumn(1).getString()});
  return holders;
}

void TaskRepository::write_task_state(const std::string& id, TaskState state) {
  store_.execute_later("UPDATE tasks SET state = ?, updated_at = ? WHERE id = ?",
                       std::string(to_string(state)), core::utc_now(), id);
}

void TaskRepository::set_current_attempt(const std::string& id, const std::string& attempt_id,
                                         int attempts_made) {
  store_.execute_later("UPDATE tasks SET current_attempt = ?, attempts_made = ? WHERE id = ?",
                       attempt_id, attempts_made, id);
}

void TaskRepository::set_cancel_requested(const std::string& id, const std::string& reason) {
  store_.execute_later("UPDATE tasks SET cancel_requested = 1, cancel_reason = ? WHERE id = ?",
                       reason, id);
}

void TaskRepository::set_final(const std::string& id, const std::string& final_json,
                               std::optional<bool> verified,
                               const std::string& verification_error) {
  store_.execute_later(
      "UPDATE tasks SET final_json = ?, output_verified = ?, verification_error = ? WHERE id = ?",
      final_json, verified, non_empty(verification_error), id);
}

void TaskRepository::insert_attempt(const AttemptRecord& attempt) {
  store_.execute_later(
      "INSERT INTO attempts (id, task_id, agent, number, state, dispatched_at, dispatched_at_ms, "
      "agent_instance) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      attempt.id, attempt.task_id, attempt.agent, attempt.number,
      std::string(to_string(attempt.state)), attempt.dispatched_at, attempt.dispatched_at_ms,
      non_empty(attempt.agent_instance));
}

std::optional<AttemptRecord> TaskRepository::find_attempt(const std::string& id) {
  static const std::string sql =
      std::string("SELECT ") + kAttemptColumns + " FROM attempts WHERE id = ?";
  auto query = store_.query(sql.c_str());
  query.bind(1, id);
  if (!query.executeStep()) return std::nullopt;
  return read_attempt(query);
}

std::optional<std::pair<AttemptRecord, std::optional<TaskRecord>>>
TaskRepository::find_attempt_with_task(const std::string& id) {
  static const std::string sql = "SELECT " + qualified(kAttemptColumns, "a") + ", " +
                                 qualified(kTaskColumns, "t") +
                                 " FROM attempts AS a LEFT JOIN tasks AS t ON t.id = a.task_id "
                                 "WHERE a.id = ?";
  static const int kTaskFirst =  // after the attempt's columns
      static_cast<int>(
          std::count(kAttemptColumns, kAttemptColumns + strlen(kAttemptColumns), ',')) +
      1;
  auto query = store_.query(sql.c_str());
  query.bind(1, id);
  if (!query.executeStep()) return std::nullopt;
  std::optional<TaskRecord> task;
  if (!query.getColumn(kTaskFirst).isNull()) task = read_task(query, kTaskFirst);
  return std::make_pair(read_attempt(query), std::move(task));
}

std::vector<AttemptRecord> TaskRepository::attempts_of(const std::string& task_id) {
  static const std::string sql =
      std::string("SELECT ") + kAttemptColumns + " FROM attempts WHERE task_id = ? ORDER BY number";
  auto query = store_.query(sql.c_str());
  query.bind(1, task_id);
  return read_attempts(query);
}

std::vector<AttemptRecord> TaskRepository::active_attempts() {
  static const std::string sql = std::string("SELECT ") + kAttemptColumns +
                                 " FROM attempts WHERE state IN ('dispatched', 'running')";
  auto query = store_.query(sql.c_str());
  return read_attempts(query);
}

std::vector<AttemptRecord> TaskRepository::active_attempts_of(const std::string& agent) {
  static const std::string sql =
      std::string("SELECT ") + kAttemptColumns +
      " FROM attempts WHERE agent = ? AND state IN ('dispatched', 'running')";
  auto query = store_.query(sql.c_str());
  query.bind(1, agent);
  return read_attempts(query);
}

void TaskRepository::mark_attempt_running(const std::string& id, int pid,
                                          const std::string& started_at) {
  store_.execute_later(
      "UPDATE attempts SET state = 'running', pid = ?, started_at = ? WHERE id = ?", pid,
      started_at, id);
}

void TaskRepository::mark_attempt_finished(const std::string& id, const std::string& final_json,
                                           const std::string& fingerprint,
                                           const std::string& finished_at) {
  store_.execute_later(
      "UPDATE attempts SET state = 'finished', final_json = ?, final_fingerprint = ?, "
      "finished_at = ? WHERE id = ?",
      final_json, fingerprint, finished_at, id);
}

void TaskRepository::mark_attempt_lost(const std::string& id, const std::string& reason) {
  store_.execute_later(
      "UPDATE attempts SET state = 'lost', lost_reason = ?, finished_at = ? WHERE id = ?", reason,
      core::utc_now(), id);
}

Result<protocol::TaskSpec> spec_for(const TaskRecord& task, const std::string& attempt_id) {
  protocol::TaskSpec spec;
  spec.task_id = task.id;
  spec.attempt_id = attempt_id;
  if (auto read = protocol::read_command_json(task.command_json, task.env_json, spec); !read) {
    return read.error();
  }
  spec.cwd = task.cwd;
  spec.timeout_s = task.timeout_s;
  spec.target = task.target;
  spec.limits = task.limits;
  return spec;
}

}  // namespace tether::hub
