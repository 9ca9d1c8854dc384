#include "hub/task_service.hpp"

#include <set>
#include <stdexcept>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/capabilities.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"

namespace tether::hub {

using protocol::AckedKind;
using protocol::ErrorFrame;
using protocol::StreamName;

namespace {

constexpr StreamName kStreams[] = {StreamName::kStdout, StreamName::kStderr};

std::string command_json(const protocol::TaskSpec& spec) {
  protocol::JsonWriter json;
  json.begin_object();
  if (spec.uses_shell()) {
    json.field("shell", spec.shell);
  } else {
    json.key("argv");
    json.begin_array();
    for (const auto& arg : spec.argv)
      json.string(arg);
    json.end_array();
  }
  json.end_object();
  return json.str();
}

std::string env_json(const protocol::TaskSpec& spec) {
  protocol::JsonWriter json;
  json.begin_object();
  for (const auto& [name, value] : spec.env)
    json.field(name, value);
  json.end_object();
  return json.str();
}

std::string status_payload(const std::string& task_id, TaskState state,
                           const std::string& attempt_id, const std::string& note) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("task_id", task_id);
  json.field("state", to_string(state));
  if (attempt_id.empty()) {
    json.key("attempt_id");
    json.null();
  } else {
    json.field("attempt_id", attempt_id);
  }
  json.field("at", core::utc_now());
  if (!note.empty()) json.field("note", note);
  json.end_object();
  return json.str();
}

std::string final_payload(const std::string& attempt_id, const protocol::FinalReport& report,
                          bool verified, const std::string& verification_error) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("attempt_id", attempt_id);
  protocol::write_final_fields(json, report);
  json.field("output_verified", verified);
  if (verification_error.empty()) {
    json.key("verification_error");
    json.null();
  } else {
    json.field("verification_error", verification_error);
  }
  json.end_object();
  return json.str();
}

protocol::Ack output_ack(const std::string& attempt_id, StreamName stream, uint64_t through) {
  protocol::Ack ack;
  ack.attempt_id = attempt_id;
  ack.acked = AckedKind::kOutput;
  ack.stream = stream;
  ack.through_seq = through;
  return ack;
}

std::string join(const std::vector<std::string>& parts) {
  std::string text;
  for (const auto& part : parts)
    text += (text.empty() ? "" : "; ") + part;
  return text;
}

}  // namespace

ErrorFrame error_frame(std::string code, std::string message, bool retryable,
                       std::string related_message_id) {
  ErrorFrame error;
  error.code = std::move(code);
  error.message = std::move(message);
  error.retryable = retryable;
  error.related_message_id = std::move(related_message_id);
  return error;
}

TaskService::TaskService(HubStore& store, TaskRepository& tasks, EventLog& events, EventHub& hub,
                         OutputLedger& ledger, TaskServiceOptions options)
    : store_(store),
      tasks_(tasks),
      events_(events),
      hub_(hub),
      ledger_(ledger),
      options_(options),
      started_ms_(wall_clock_ms()) {}

void TaskService::publish_after_commit(std::shared_ptr<const StoredEvent> event) {
  store_.after_commit([this, event = std::move(event)] { hub_.publish(event); });
}

void TaskService::transition(TaskRecord& task, TaskState to, const std::string& attempt_id,
                             const std::string& note) {
  if (!is_legal_transition(task.state, to)) {
    throw std::logic_error("illegal task transition " + std::string(to_string(task.state)) +
                           " -> " + std::string(to_string(to)) + " for " + task.id);
  }
  tasks_.write_task_state(task.id, to);
  task.state = to;
  publish_after_commit(events_.append_status(task.id, attempt_id, to_string(to),
                                             status_payload(task.id, to, attempt_id, note)));
  core::log_info("tasks", task.id + " " + std::string(to_string(to)) +
                              (attempt_id.empty() ? "" : " (" + attempt_id + ")") +
                              (note.empty() ? "" : ": " + note));
}

Result<TaskRecord> TaskService::submit(const SubmitRequest& request) {
  protocol::TaskSpec spec = request.spec;
  spec.task_id = "t-" + random_hex(8);
  spec.attempt_id = spec.task_id + "-a1";
  if (auto valid = protocol::validate_task(spec); !valid) return valid.error();
  if (request.max_attempts < 1 || request.max_attempts > 100) {
    return make_error("invalid_field", "task.max_attempts: must be from 1 to 100");
  }
  if (!spec.target.empty() && request.reject_on_conflict) {
    if (auto holder = tasks_.active_task_with_target(request.agent, spec.target, false)) {
      return make_error("target_busy", *holder);
    }
  }
  TaskRecord task;
  task.id = spec.task_id;
  task.agent = request.agent;
  task.state = TaskState::kQueued;
  task.command_json = command_json(spec);
  task.env_json = env_json(spec);
  task.cwd = spec.cwd;
  task.timeout_s = spec.timeout_s;
  task.target = spec.target;
  task.max_attempts = request.max_attempts;
  task.created_at = core::utc_now();
  task.updated_at = task.created_at;
  tasks_.insert_task(task);
  // A task's first state is set when it is created; every later one goes
  // through transition().
  publish_after_commit(events_.append_status(task.id, "", to_string(TaskState::kQueued),
                                             status_payload(task.id, TaskState::kQueued, "", "")));
  core::log_info("tasks", task.id + " queued for agent " + task.agent);
  const std::string agent = task.agent;
  store_.after_commit([this, agent] {
    if (notifier_.task_queued) notifier_.task_queued(agent);
  });
  return task;
}

Result<TaskRecord> TaskService::cancel(const std::string& task_id, const std::string& reason) {
  auto task = tasks_.find_task(task_id);
  if (!task) return make_error("not_found", "no task '" + task_id + "'");
  if (is_terminal(task->state)) {
    return make_error("already_finished", "task " + task_id + " already ended as " +
                                              std::string(to_string(task->state)));
  }
  tasks_.set_cancel_requested(task->id, reason);
  task->cancel_requested = true;
  task->cancel_reason = reason;
  if (task->state == TaskState::kQueued) {
    transition(*task, TaskState::kCancelled, "", "cancelled before it was dispatched: " + reason);
    return *task;
  }
  protocol::TaskCancel cancel{{task->id, task->current_attempt}, reason};
  const std::string agent = task->agent;
  store_.after_commit([this, agent, cancel] {
    if (notifier_.send_cancel) notifier_.send_cancel(agent, cancel);
  });
  return *task;
}

int TaskService::end_tasks_of_removed_agent(const std::string& agent) {
  const std::string note = "agent " + agent + " was removed";
  int ended = 0;
  for (const auto& attempt : tasks_.active_attempts_of(agent)) {
    tasks_.mark_attempt_lost(attempt.id, note);
    ledger_.forget(attempt.id);
    auto task = tasks_.find_task(attempt.task_id);
    if (task && !is_terminal(task->state)) {
      transition(*task, TaskState::kLost, attempt.id, note);
      ++ended;
    }
  }
  for (auto& task : tasks_.queued_tasks(agent)) {
    transition(task, TaskState::kCancelled, "", "cancelled before it was dispatched: " + note);
    ++ended;
  }
  return ended;
}

std::optional<protocol::TaskSpec> TaskService::dispatch_next(const std::string& agent,
                                                             const std::string& instance) {
  for (auto& task : tasks_.queued_tasks(agent)) {
    if (!task.target.empty() && tasks_.active_task_with_target(agent, task.target, true)) {
      continue;  // its target is held by a dispatched or running task
    }
    AttemptRecord attempt;
    attempt.number = task.attempts_made + 1;
    attempt.id = task.id + "-a" + std::to_string(attempt.number);
    attempt.task_id = task.id;
    attempt.agent = agent;
    attempt.state = AttemptState::kDispatched;
    attempt.dispatched_at = core::utc_now();
    attempt.dispatched_at_ms = wall_clock_ms();
    attempt.agent_instance = instance;
    auto spec = spec_for(task, attempt.id);
    if (!spec) {
      core::log_error("tasks", task.id + " cannot be dispatched: " + spec.error().message);
      continue;
    }
    tasks_.insert_attempt(attempt);
    tasks_.set_current_attempt(task.id, attempt.id, attempt.number);
    task.current_attempt = attempt.id;
    transition(task, TaskState::kDispatched, attempt.id, "");
    return std::move(*spec);
  }
  return std::nullopt;
}

std::optional<ErrorFrame> TaskService::check_attempt(const std::string& agent,
                                                     const std::string& attempt_id,
                                                     const std::string& message_id,
                                                     std::optional<AttemptRecord>& attempt) {
  attempt = tasks_.find_attempt(attempt_id);
  // Another agent's attempt looks exactly like a missing one: no information leaks.
  if (!attempt || attempt->agent != agent) {
    auto error = error_frame("unknown_attempt", "no attempt " + attempt_id + " for this agent",
                             false, message_id);
    error.attempt_id = attempt_id;
    return error;
  }
  if (attempt->state == AttemptState::kLost) {
    auto error = error_frame(
        "attempt_discarded",
        "attempt " + attempt_id + " was declared lost: " + attempt->lost_reason, false, message_id);
    error.attempt_id = attempt_id;
    return error;
  }
  return std::nullopt;
}

FrameVerdict TaskService::on_started(const std::string& agent, const protocol::TaskStarted& started,
                                     const std::string& message_id) {
  std::optional<AttemptRecord> attempt;
  if (auto error = check_attempt(agent, started.attempt.attempt_id, message_id, attempt)) {
    return {std::move(error), std::nullopt};
  }
  if (attempt->state == AttemptState::kDispatched) {
    tasks_.mark_attempt_running(
        attempt->id, started.report.pid,
        started.report.started_at.empty() ? core::utc_now() : started.report.started_at);
    auto task = tasks_.find_task(attempt->task_id);
    if (task && task->state == TaskState::kDispatched) {
      transition(*task, TaskState::kRunning, attempt->id, "");
    }
    // A cancel that arrived before the agent knew the attempt goes out again.
    if (task && task->cancel_requested) {
      protocol::TaskCancel cancel{{task->id, attempt->id}, task->cancel_reason};
      store_.after_commit([this, agent, cancel] {
        if (notifier_.send_cancel) notifier_.send_cancel(agent, cancel);
      });
    }
  }
  protocol::Ack ack;
  ack.attempt_id = attempt->id;
  ack.acked = AckedKind::kStarted;
  ack.related_message_id = message_id;
  return {std::nullopt, ack};
}

FrameVerdict TaskService::on_output(const std::string& agent, const protocol::TaskOutput& output,
                                    const std::string& message_id) {
  std::optional<AttemptRecord> attempt;
  const auto& chunk = output.chunk;
  if (auto error = check_attempt(agent, output.attempt.attempt_id, message_id, attempt)) {
    return {std::move(error), std::nullopt};
  }
  StreamLedger& ledger = ledger_.stream(attempt->id, chunk.stream);
  switch (ledger_.classify(ledger, chunk.seq, chunk.offset)) {
    case SequenceVerdict::kDuplicate:
      return {std::nullopt, output_ack(attempt->id, chunk.stream, ledger.highest_seq)};
    case SequenceVerdict::kGap:
    case SequenceVerdict::kOffsetMismatch: {
      const bool gap = chunk.seq > ledger.highest_seq + 1;
      auto error =
          error_frame(gap ? "output_sequence_gap" : "output_offset_mismatch",
                      std::string(to_string(chunk.stream)) + " of " + attempt->id +
                          (gap ? ": expected seq " + std::to_string(ledger.highest_seq + 1) +
                                     ", got " + std::to_string(chunk.seq)
                               : ": seq " + std::to_string(chunk.seq) + " starts at offset " +
                                     std::to_string(chunk.offset) + ", expected " +
                                     std::to_string(ledger.stored_bytes)),
                      gap, message_id);
      error.attempt_id = attempt->id;
      error.stream = chunk.stream;
      error.highest_accepted_seq = ledger.highest_seq;
      error.next_offset = ledger.stored_bytes;
      return {std::move(error), std::nullopt};
    }
    case SequenceVerdict::kNext:
      break;
  }
  if (attempt->state == AttemptState::kFinished) {
    auto error = error_frame("attempt_finished",
                             "attempt " + attempt->id + " already has its final; no more output",
                             false, message_id);
    error.attempt_id = attempt->id;
    return {std::move(error), std::nullopt};
  }
  publish_after_commit(events_.append_output(attempt->task_id, attempt->id, chunk));
  ledger_.record_data(ledger, chunk.seq, chunk.data);
  return {std::nullopt, output_ack(attempt->id, chunk.stream, ledger.highest_seq)};
}

FrameVerdict TaskService::on_gap(const std::string& agent, const protocol::TaskOutputGap& gap,
                                 const std::string& message_id) {
  std::optional<AttemptRecord> attempt;
  if (auto error = check_attempt(agent, gap.attempt.attempt_id, message_id, attempt)) {
    return {std::move(error), std::nullopt};
  }
  StreamLedger& ledger = ledger_.stream(attempt->id, gap.stream);
  const auto verdict = ledger_.classify(ledger, gap.seq, gap.offset);
  if (verdict == SequenceVerdict::kDuplicate) {
    return {std::nullopt, output_ack(attempt->id, gap.stream, ledger.highest_seq)};
  }
  if (verdict != SequenceVerdict::kNext || attempt->state == AttemptState::kFinished) {
    const bool retryable = verdict == SequenceVerdict::kGap;
    auto error =
        error_frame(verdict == SequenceVerdict::kGap              ? "output_sequence_gap"
                    : verdict == SequenceVerdict::kOffsetMismatch ? "output_offset_mismatch"
                                                                  : "attempt_finished",
                    "gap record " + std::to_string(gap.seq) + " of " + attempt->id +
                        " does not continue " + std::string(to_string(gap.stream)),
                    retryable, message_id);
    error.attempt_id = attempt->id;
    error.stream = gap.stream;
    error.highest_accepted_seq = ledger.highest_seq;
    error.next_offset = ledger.stored_bytes;
    return {std::move(error), std::nullopt};
  }
  publish_after_commit(events_.append_gap(attempt->task_id, attempt->id, gap.stream, gap.seq,
                                          gap.offset, gap.length));
  const bool first_gap = ledger.gap_bytes == 0;
  ledger_.record_gap(ledger, gap.seq, gap.length);
  // An overflowing outbox sends gaps by the hundred: the first is news, the
  // rest are in the events and the final's total.
  const std::string what = attempt->id + " " + std::string(to_string(gap.stream)) +
                           ": agent dropped " + std::to_string(gap.length) + " bytes at offset " +
                           std::to_string(gap.offset);
  if (first_gap) {
    core::log_warning("tasks", what + " (its outbox was full; the final reports the total)");
  } else {
    core::log_debug("tasks", what);
  }
  return {std::nullopt, output_ack(attempt->id, gap.stream, ledger.highest_seq)};
}

FinalVerdict TaskService::on_final(const std::string& agent, const protocol::TaskFinal& final_frame,
                                   const std::string& message_id) {
  FinalVerdict verdict;
  std::optional<AttemptRecord> attempt;
  const auto& report = final_frame.report;
  if (auto error = check_attempt(agent, final_frame.attempt.attempt_id, message_id, attempt)) {
    verdict.error = std::move(error);
    return verdict;
  }
  const std::string fingerprint = protocol::final_fingerprint(report);
  if (attempt->state == AttemptState::kFinished) {
    if (fingerprint == attempt->final_fingerprint) {
      auto task = tasks_.find_task(attempt->task_id);
      verdict.verified = task && task->output_verified.value_or(false);
      return verdict;  // the same final again: acked again
    }
    verdict.error =
        error_frame("final_conflict", "attempt " + attempt->id + " already has a different final",
                    false, message_id);
    verdict.error->attempt_id = attempt->id;
    return verdict;
  }

  for (StreamName stream : kStreams) {
    const StreamLedger& ledger = ledger_.stream(attempt->id, stream);
    const auto& summary = report.summary(stream);
    // Bytes the agent says it could never send (section 5) are not waited for.
    if (summary.bytes - summary.undelivered_bytes > ledger.stored_bytes) {
      verdict.missing.push_back(
          {stream, ledger.highest_seq + 1, ledger.stored_bytes, summary.bytes});
    }
  }
  if (!verdict.missing.empty()) {
    const auto& first = verdict.missing.front();
    auto error =
        error_frame("output_incomplete",
                    "final of " + attempt->id + " reports " + std::to_string(first.expected_bytes) +
                        " bytes of " + std::string(to_string(first.stream)) + " but " +
                        std::to_string(first.from_offset) + " are stored; send the rest first",
                    true, message_id);
    error.attempt_id = attempt->id;
    error.stream = first.stream;
    error.highest_accepted_seq = first.from_seq - 1;
    error.next_offset = first.from_offset;
    verdict.error = std::move(error);
    return verdict;
  }

  bool verified = true;
  std::vector<std::string> problems;
  for (StreamName stream : kStreams) {
    StreamLedger& ledger = ledger_.stream(attempt->id, stream);
    const auto& summary = report.summary(stream);
    const std::string name(to_string(stream));
    if (summary.undelivered_bytes > 0) {
      verified = false;
      problems.push_back("the agent could not deliver the last " +
                         std::to_string(summary.undelivered_bytes) + " bytes of " + name +
                         " (a frame of it was refused, or its seqs were gone; see the final's "
                         "error); " +
                         std::to_string(ledger.stored_bytes) + " are stored");
    } else if (summary.dropped_bytes > 0 || ledger.gap_bytes > 0) {
      verified = false;
      problems.push_back("the agent dropped " + std::to_string(summary.dropped_bytes) +
                         " bytes of " + name + " (outbox full); gap events mark where");
      if (ledger.gap_bytes != summary.dropped_bytes) {
        problems.push_back("the hub recorded " + std::to_string(ledger.gap_bytes) + " bytes of " +
                           name + " gaps");
      }
    } else if (summary.bytes < ledger.stored_bytes) {
      verified = false;
      problems.push_back("the hub stored " + std::to_string(ledger.stored_bytes) + " bytes of " +
                         name + " but the final reports " + std::to_string(summary.bytes));
    } else if (ledger.digest.hex_digest() != summary.sha256) {
      verified = false;
      problems.push_back("the SHA-256 of the stored " + name + " differs from the agent's");
    }
  }
  const std::string verification_error = join(problems);
  const std::string final_json = protocol::encode_final_report(report);
  tasks_.mark_attempt_finished(attempt->id, final_json, fingerprint,
                               report.finished_at.empty() ? core::utc_now() : report.finished_at);
  auto task = tasks_.find_task(attempt->task_id);
  if (!task) throw std::logic_error("attempt " + attempt->id + " has no task");
  tasks_.set_final(task->id, final_json, verified, verification_error);
  publish_after_commit(events_.append_final(
      task->id, attempt->id, final_payload(attempt->id, report, verified, verification_error)));
  if (!verified)
    core::log_warning("tasks", attempt->id + " output not verified: " + verification_error);

  TaskState next = state_for(report.status);
  if (next == TaskState::kLost && task->attempts_made < task->max_attempts) {
    transition(*task, TaskState::kQueued, attempt->id, "the agent lost the attempt; queued again");
    const std::string owner = task->agent;
    store_.after_commit([this, owner] {
      if (notifier_.task_queued) notifier_.task_queued(owner);
    });
  } else if (is_legal_transition(task->state, next)) {
    transition(*task, next, attempt->id, report.error);
  } else {
    transition(*task, TaskState::kFailed, attempt->id,
               "the agent reported " + std::string(protocol::to_string(report.status)) +
                   " for an attempt that had started");
  }
  ledger_.forget(attempt->id);
  verdict.verified = verified;
  return verdict;
}

protocol::HubHelloAck TaskService::on_hello(const std::string& agent,
                                            const protocol::AgentHello& hello,
                                            const std::string& message_id,
                                            std::vector<protocol::TaskCancel>& cancels) {
  agent_seen(agent);
  store_.begin_write();
  auto update = store_.statement(
      "UPDATE agents SET version = ?, outbox_rows = ?, outbox_bytes = ?, outbox_reported_at = ?, "
      "last_seen_at = ? WHERE name = ?");
  update.bind(1, hello.version);
  if (hello.outbox_rows) {
    update.bind(2, static_cast<int64_t>(*hello.outbox_rows));
  } else {
    update.bind(2);
  }
  if (hello.outbox_bytes) {
    update.bind(3, static_cast<int64_t>(*hello.outbox_bytes));
  } else {
    update.bind(3);
  }
  const std::string now = core::utc_now();
  update.bind(4, now);
  update.bind(5, now);
  update.bind(6, agent);
  update.exec();

  protocol::HubHelloAck ack;
  ack.related_message_id = message_id;
  ack.version = TETHER_VERSION;
  ack.capabilities = protocol::hub_capabilities();

  // Every attempt the agent mentions, with the streams it holds output for.
  std::map<std::string, std::set<StreamName>> mentioned;
  std::set<std::string> unacked_finals;
  for (const auto& running : hello.running) {
    mentioned[running.attempt_id].insert({StreamName::kStdout, StreamName::kStderr});
  }
  for (const auto& range : hello.outbox)
    mentioned[range.attempt.attempt_id].insert(range.stream);
  for (const auto& final_ref : hello.unacked_finals) {
    mentioned[final_ref.attempt_id];
    unacked_finals.insert(final_ref.attempt_id);
  }
  for (const auto& [attempt_id, streams] : mentioned) {
    auto attempt = tasks_.find_attempt(attempt_id);
    if (!attempt || attempt->agent != agent) {
      ack.discard.push_back({attempt_id, "unknown to the hub"});
      continue;
    }
    if (attempt->state == AttemptState::kLost) {
      ack.discard.push_back({attempt_id, "lost: " + attempt->lost_reason});
      continue;
    }
    if (attempt->state == AttemptState::kFinished && unacked_finals.count(attempt_id)) {
      ack.finals_held.push_back(attempt_id);
    }
    for (StreamName stream : streams) {
      ack.resume.push_back(
          {attempt_id, stream, ledger_.stream(attempt_id, stream).highest_seq + 1});
    }
    if (attempt->state != AttemptState::kFinished) {
      auto task = tasks_.find_task(attempt->task_id);
      if (task && task->cancel_requested) {
        cancels.push_back({{task->id, attempt->id}, task->cancel_reason});
      }
    }
  }
  // A new run of the agent process holds nothing of what was dispatched to
  // an earlier one, unless it says so: waiting out the lease would only
  // leave the task idle (section 8). A partial hello says nothing of what
  // it left out.
  if (!hello.instance.empty() && !hello.partial) {
    for (const auto& attempt : tasks_.active_attempts_of(agent)) {
      if (mentioned.count(attempt.id) || attempt.agent_instance.empty() ||
          attempt.agent_instance == hello.instance) {
        continue;
      }
      const std::string reason = "dispatched to an earlier run of agent " + agent + " (" +
                                 attempt.agent_instance + "); its new run (" + hello.instance +
                                 ") does not hold it";
      if (attempt.state == AttemptState::kDispatched) {
        retract_dispatch(attempt.id, reason);
      } else {
        lose_attempt(attempt, reason);
      }
    }
  }
  return ack;
}

void TaskService::agent_seen(const std::string& agent) {
  last_seen_ms_[agent] = wall_clock_ms();
}

std::optional<int64_t> TaskService::last_seen_ms(const std::string& agent) const {
  auto it = last_seen_ms_.find(agent);
  if (it == last_seen_ms_.end()) return std::nullopt;
  return it->second;
}

void TaskService::check_leases() {
  const int64_t now = wall_clock_ms();
  for (const auto& attempt : tasks_.active_attempts()) {
    if (attempt.state == AttemptState::kDispatched &&
        now - attempt.dispatched_at_ms > options_.lease_ms) {
      lose_attempt(attempt, "not started within the " + std::to_string(options_.lease_ms / 1000) +
                                " s lease");
      continue;
    }
    const bool connected = notifier_.is_connected && notifier_.is_connected(attempt.agent);
    auto seen = last_seen_ms_.find(attempt.agent);
    // After a hub restart every agent gets a full lease to come back.
    const int64_t last = std::max(seen == last_seen_ms_.end() ? 0 : seen->second, started_ms_);
    if (!connected && now - last > options_.lease_ms) {
      lose_attempt(attempt, "agent " + attempt.agent + " gone for more than the " +
                                std::to_string(options_.lease_ms / 1000) + " s lease");
    }
  }
}

void TaskService::retract_dispatch(const std::string& attempt_id, const std::string& reason) {
  auto attempt = tasks_.find_attempt(attempt_id);
  // Only an attempt the agent cannot have started: once task.started came,
  // it ran, and only its final or the lease ends it.
  if (!attempt || attempt->state != AttemptState::kDispatched) return;
  lose_attempt(*attempt, reason, false);
}

void TaskService::lose_attempt(const AttemptRecord& attempt, const std::string& reason,
                               bool counts) {
  tasks_.mark_attempt_lost(attempt.id, reason);
  ledger_.forget(attempt.id);
  auto task = tasks_.find_task(attempt.task_id);
  if (!task || is_terminal(task->state)) return;
  const int allowed = counts ? task->max_attempts : task->max_attempts + kMaxRetractions;
  if (task->attempts_made < allowed) {
    transition(*task, TaskState::kQueued, attempt.id,
               "attempt lost (" + reason + "); queued again");
    const std::string agent = task->agent;
    store_.after_commit([this, agent] {
      if (notifier_.task_queued) notifier_.task_queued(agent);
    });
  } else {
    transition(*task, TaskState::kLost, attempt.id, reason);
  }
}

}  // namespace tether::hub
