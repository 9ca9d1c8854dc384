#include "hub/run_coordinator.hpp"

#include <algorithm>

#include "core/wall_clock.hpp"
#include "hub/tokens.hpp"
#include "protocol/report_json.hpp"
#include "protocol/selector.hpp"

namespace tether::hub {

namespace {

std::string plural(uint64_t count, const char* word) {
  return std::to_string(count) + " " + word + (count == 1 ? "" : "s");
}

}  // namespace

bool counts_as_error(TaskState state, bool lost_is_error) {
  return state == TaskState::kFailed || state == TaskState::kTimedOut ||
         state == TaskState::kRejected || (lost_is_error && state == TaskState::kLost);
}

Result<std::vector<std::string>> RunCoordinator::targets(const protocol::RunRequest& request) {
  std::vector<std::string> names;
  if (!request.selector.empty()) {
    auto selector = protocol::Selector::parse(request.selector);
    if (!selector) return make_error(Errc::kInvalid, "invalid_field", selector.error().message);
    for (const auto& agent : agents_.list()) {
      if (selector->matches(agent.labels)) names.push_back(agent.name);
    }
    if (names.empty()) {
      return make_error(Errc::kInvalid, "invalid_field",
                        "run.selector: no agent matches '" + request.selector + "'");
    }
  } else {
    for (const auto& name : request.agents) {
      if (!agents_.exists(name)) {
        return make_error(Errc::kInvalid, "invalid_field",
                          "run.agents: no agent named '" + name + "'");
      }
      names.push_back(name);
    }
  }
  if (names.size() > protocol::kMaxRunAgents) {
    return make_error(Errc::kInvalid, "invalid_field",
                      "run: more than " + std::to_string(protocol::kMaxRunAgents) + " agents");
  }
  return names;
}

Result<RunRecord> RunCoordinator::create(const protocol::RunRequest& request,
                                         const std::vector<std::string>& agents,
                                         const std::string& created_by) {
  RunRecord run;
  run.id = "r-" + random_hex(8);
  run.selector = request.selector;
  run.agents = request.agents;
  run.command_json = protocol::command_json(request.spec);
  const uint64_t total = agents.size();
  run.max_concurrency = request.max_concurrency.resolve(total, true);
  if (request.max_errors) run.max_errors = request.max_errors->resolve(total, false);
  run.canary = std::min<uint64_t>(request.canary, total);
  run.offline_timeout_s = request.offline_timeout_s;
  run.cancel_on_error = request.cancel_on_error;
  run.lost_is_error = request.lost_is_error;
  run.created_by = created_by;
  run.created_at = core::utc_now();
  runs_.insert(run);
  // Connected agents first: they are the ones a canary and the first
  // releases should go to; the order is kept (stable) by name otherwise.
  std::vector<std::string> ordered = agents;
  std::stable_sort(ordered.begin(), ordered.end(), [this](const auto& a, const auto& b) {
    return transitions_.is_connected(a) && !transitions_.is_connected(b);
  });
  for (const auto& agent : ordered) {
    protocol::SubmitRequest task;
    task.agent = agent;
    task.spec = request.spec;
    auto created = dispatch_.submit(task, run.id);
    if (!created) return created.error();
  }
  transitions_.run_changed(run.id, "running",
                           plural(total, "agent") + ", max_concurrency " +
                               std::to_string(run.max_concurrency) +
                               (run.canary ? ", canary " + std::to_string(run.canary) : ""));
  advance(run.id);
  return *runs_.find(run.id);
}

Result<RunRecord> RunCoordinator::cancel(const std::string& run_id, const std::string& reason) {
  auto run = runs_.find(run_id);
  if (!run) return make_error(Errc::kNotFound, "not_found", "no run '" + run_id + "'");
  if (protocol::is_terminal_run_state(run->state)) {
    return make_error(Errc::kState, "already_finished",
                      "run " + run_id + " already ended as " + run->state);
  }
  const std::string why = "cancelled: " + reason;
  runs_.set_stop_reason(run_id, why, true);
  const auto rows = runs_.decision_rows(run_id);
  skip_held(rows, "run " + why);
  for (const auto& row : rows) {
    if (!row.held && !is_terminal(row.state)) (void)dispatch_.cancel(row.task_id, reason);
  }
  advance(run_id);
  return *runs_.find(run_id);
}

void RunCoordinator::task_ended(const std::string& run_id) {
  if (advancing_.count(run_id)) {
    again_ = true;  // a task this decision ended: decided again before it returns
    return;
  }
  // Decided once per turn, just before it commits, however many of the
  // run's tasks ended in it: the counts read once, and the run's row lock
  // held from then to the commit only. An entry point that fails takes its
  // task end (and its call) back.
  ended_.add(run_id);
}

void RunCoordinator::decide_ended(const std::vector<std::string>& ended) {
  for (const auto& run_id : std::set<std::string>(ended.begin(), ended.end())) {
    // Its own entry point: a decision that fails (another hub's lock in a
    // deadlock, a lost connection) leaves the turn's task ends stored, and
    // the next sweep decides for the run again.
    const auto outcome =
        runs_.store().guarded("run " + run_id + " decision", [&] { advance(run_id); });
    if (outcome == core::SqlStore::Outcome::kDone) continue;
    undecided_.insert(run_id);
    // The whole transaction went with it (a lost connection): the commit
    // must fail too, not go on with what is left of the turn.
    if (!runs_.store().in_transaction())
      throw core::SqlError("the transaction was lost deciding for run " + run_id, true);
  }
}

void RunCoordinator::sweep(int64_t now_ms) {
  // Taken off the list once the decision is committed.
  for (const auto& run_id : std::vector<std::string>(undecided_.begin(), undecided_.end())) {
    advance(run_id);
    runs_.store().after_commit([this, run_id] { undecided_.erase(run_id); });
  }
  for (const auto& run_id : runs_.running_ids()) {
    auto run = runs_.find(run_id);
    if (!run) continue;
    const int64_t timeout_ms = static_cast<int64_t>(run->offline_timeout_s) * 1000;
    for (const auto& row : runs_.decision_rows(run_id)) {
      if (row.held || row.state != TaskState::kQueued || !row.released_at_ms) continue;
      if (now_ms - *row.released_at_ms < timeout_ms || online(row.agent)) continue;
      // Claimed: another hub's sweep (or dispatch) may hold it right now.
      if (!tasks_.claim_queued(row.task_id)) continue;
      auto task = tasks_.find_task(row.task_id);
      if (!task || task->state != TaskState::kQueued) continue;
      const std::string note =
          "agent " + row.agent + " offline for " + std::to_string(run->offline_timeout_s) + " s";
      tasks_.set_cancel_requested(task->id, note);  // the view's note
      transitions_.transition(*task, TaskState::kSkipped, "", note);
    }
  }
}

void RunCoordinator::advance(const std::string& run_id) {
  if (advancing_.count(run_id)) {
    again_ = true;  // the outer call decides again once this change is in
    return;
  }
  // Another hub may decide for the same run in its own turn: one at a time.
  runs_.lock(run_id);
  advancing_.insert(run_id);
  try {
    do {
      again_ = false;
      advance_once(run_id);
    } while (again_);
  } catch (...) {
    // The entry point fails with the decision's writes; left marked, the
    // run would never be decided for again on this hub.
    advancing_.erase(run_id);
    throw;
  }
  advancing_.erase(run_id);
}

void RunCoordinator::advance_once(const std::string& run_id) {
  auto run = runs_.find(run_id);
  if (!run || protocol::is_terminal_run_state(run->state)) return;
  // Counts and the canaries, not every row: this runs at every task end.
  std::vector<RunTaskRow> canaries;
  if (run->canary > 0) canaries = runs_.decision_rows(run_id, run->canary);
  auto counts = runs_.counts_of(run_id);
  if (run->stop_reason.empty()) {
    const std::string reason = stop_reason_for(*run, counts, canaries);
    if (!reason.empty()) {
      runs_.set_stop_reason(run_id, reason, false);
      run->stop_reason = reason;
      transitions_.run_changed(run_id, "running", "stopping: " + reason);
      const auto rows = runs_.decision_rows(run_id);
      skip_held(rows, "run stopped: " + reason);
      if (run->cancel_on_error) {
        for (const auto& row : rows) {
          if (!row.held && !is_terminal(row.state)) {
            (void)dispatch_.cancel(row.task_id, "run stopped: " + reason);
          }
        }
      }
      counts = runs_.counts_of(run_id);
    }
  }
  if (run->stop_reason.empty()) release_next(*run, counts, canaries);
  // Releasing changed no task's state: whether all have ended reads the same.
  finish_if_done(*run, counts);
}

std::string RunCoordinator::stop_reason_for(const RunRecord& run, const RunCounts& counts,
                                            const std::vector<RunTaskRow>& canaries) const {
  for (const auto& row : canaries) {
    if (is_terminal(row.state) && row.state != TaskState::kSucceeded) {
      return "canary on " + row.agent + " ended " + std::string(to_string(row.state));
    }
  }
  if (!run.max_errors) return {};
  uint64_t errors = 0;
  for (const auto& [key, count] : counts)
    errors += counts_as_error(key.first, run.lost_is_error) ? count : 0;
  if (errors <= *run.max_errors) return {};
  return plural(errors, "error") + ", more than max_errors " + std::to_string(*run.max_errors);
}

void RunCoordinator::skip_held(const std::vector<RunTaskRow>& rows, const std::string& note) {
  for (const auto& row : rows) {
    if (!row.held || row.state != TaskState::kQueued) continue;
    auto task = tasks_.find_task(row.task_id);
    if (task && task->state == TaskState::kQueued) {
      tasks_.set_cancel_requested(task->id, note);  // the view's note
      transitions_.transition(*task, TaskState::kSkipped, "", note);
    }
  }
}

void RunCoordinator::release_next(const RunRecord& run, const RunCounts& counts,
                                  const std::vector<RunTaskRow>& canaries) {
  uint64_t in_flight = 0;
  for (const auto& [key, count] : counts)
    in_flight += !key.second && !is_terminal(key.first) ? count : 0;
  if (in_flight >= run.max_concurrency) return;
  const bool canaries_done = std::all_of(canaries.begin(), canaries.end(), [](const auto& row) {
    return row.state == TaskState::kSucceeded;
  });
  std::vector<RunTaskRow> next;
  if (canaries_done) {
    next = runs_.decision_rows(run.id, run.max_concurrency - in_flight, /*held_queued_only=*/true);
  } else {
    for (const auto& row : canaries)  // the canary goes alone
      if (row.held && row.state == TaskState::kQueued) next.push_back(row);
  }
  const int64_t now_ms = wall_clock_ms();
  for (const auto& row : next) {
    if (in_flight >= run.max_concurrency) break;
    runs_.release(row.task_id, now_ms);
    transitions_.wake_after_commit(row.agent);
    ++in_flight;
  }
}

void RunCoordinator::finish_if_done(const RunRecord& run, const RunCounts& counts) {
  uint64_t total = 0, ended = 0, succeeded = 0;
  for (const auto& [key, count] : counts) {
    total += count;
    ended += is_terminal(key.first) ? count : 0;
    succeeded += key.first == TaskState::kSucceeded ? count : 0;
  }
  if (ended < total) return;
  const std::string state = run.cancelled              ? "cancelled"
                            : !run.stop_reason.empty() ? "stopped"
                            : succeeded == total       ? "succeeded"
                                                       : "failed";
  runs_.finish(run.id, state);
  transitions_.run_changed(run.id, state, run.stop_reason);
}

protocol::RunView RunCoordinator::view(const RunRecord& run, bool with_tasks) {
  protocol::RunView view;
  view.id = run.id;
  view.state = run.state;
  view.selector = run.selector;
  view.agents = run.agents;
  view.command_json = run.command_json;
  view.max_concurrency = run.max_concurrency;
  view.max_errors = run.max_errors;
  view.canary = run.canary;
  view.offline_timeout_s = run.offline_timeout_s;
  view.cancel_on_error = run.cancel_on_error;
  view.lost_is_error = run.lost_is_error;
  view.stop_reason = run.stop_reason;
  view.created_at = run.created_at;
  view.finished_at = run.finished_at;
  for (const auto& state : protocol::run_task_states())
    view.counts[state] = 0;
  for (const auto& row : runs_.tasks_of(run.id)) {
    ++view.counts[std::string(to_string(row.state))];
    view.errors += counts_as_error(row.state, run.lost_is_error) ? 1 : 0;
    if (!with_tasks) continue;
    protocol::RunTaskView task;
    task.agent = row.agent;
    task.task_id = row.task_id;
    task.state = std::string(to_string(row.state));
    if (!row.final_json.empty()) {
      if (auto report = protocol::decode_final_report(row.final_json)) {
        task.exit_code = report->exit_code;
        task.stdout_bytes = report->stdout_summary.bytes;
        task.stderr_bytes = report->stderr_summary.bytes;
        task.started_at = report->started_at;
        task.finished_at = report->finished_at;
        task.note = report->error;
      }
    } else if (row.state == TaskState::kSkipped || row.state == TaskState::kCancelled) {
      task.note = row.note;
    }
    view.tasks.push_back(std::move(task));
  }
  std::sort(view.tasks.begin(), view.tasks.end(),
            [](const auto& a, const auto& b) { return a.agent < b.agent; });
  return view;
}

}  // namespace tether::hub
