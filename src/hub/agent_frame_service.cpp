#include "hub/agent_frame_service.hpp"

#include <map>
#include <set>
#include <stdexcept>

#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/capabilities.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/report_json.hpp"

namespace tether::hub {

using protocol::AckedKind;
using protocol::ErrorCode;
using protocol::ErrorFrame;
using protocol::StreamName;

namespace {

protocol::Ack output_ack(const std::string& attempt_id, StreamName stream, uint64_t through) {
  protocol::Ack ack;
  ack.attempt_id = attempt_id;
  ack.acked = AckedKind::kOutput;
  ack.stream = stream;
  ack.through_seq = through;
  return ack;
}

}  // namespace

std::optional<ErrorFrame> AgentFrameService::check_attempt(const std::string& agent,
                                                           const std::string& attempt_id,
                                                           const std::string& message_id,
                                                           std::optional<AttemptRecord>& attempt,
                                                           std::optional<TaskRecord>* task) {
  if (task) {
    auto both = tasks_.find_attempt_with_task(attempt_id);
    attempt.reset();
    if (both) {
      attempt = std::move(both->first);
      *task = std::move(both->second);
    }
  } else {
    attempt = tasks_.find_attempt(attempt_id);
  }
  // Another agent's attempt looks exactly like a missing one: no information leaks.
  if (!attempt || attempt->agent != agent) {
    auto error = protocol::error_frame(ErrorCode::kUnknownAttempt,
                                       "no attempt " + attempt_id + " for this agent", message_id);
    error.attempt_id = attempt_id;
    return error;
  }
  if (attempt->state == AttemptState::kLost) {
    auto error = protocol::error_frame(
        ErrorCode::kAttemptDiscarded,
        "attempt " + attempt_id + " was declared lost: " + attempt->lost_reason, message_id);
    error.attempt_id = attempt_id;
    return error;
  }
  return std::nullopt;
}

ErrorFrame AgentFrameService::sequence_error(ErrorCode code, std::string message,
                                             const std::string& message_id,
                                             const AttemptRecord& attempt, StreamName stream,
                                             const StreamLedger& ledger) {
  auto error = protocol::error_frame(code, std::move(message), message_id);
  error.attempt_id = attempt.id;
  error.stream = stream;
  error.highest_accepted_seq = ledger.highest_seq;
  error.next_offset = ledger.stored_bytes;
  return error;
}

FrameVerdict AgentFrameService::on_started(const std::string& agent,
                                           const protocol::TaskStarted& started,
                                           const std::string& message_id) {
  std::optional<AttemptRecord> attempt;
  std::optional<TaskRecord> task;  // read with the attempt: one round trip on PostgreSQL
  if (auto error = check_attempt(agent, started.attempt.attempt_id, message_id, attempt, &task)) {
    return {std::move(error), std::nullopt};
  }
  if (attempt->state == AttemptState::kDispatched) {
    tasks_.mark_attempt_running(
        attempt->id, started.report.pid,
        started.report.started_at.empty() ? core::utc_now() : started.report.started_at);
    if (task && task->state == TaskState::kDispatched) {
      transitions_.transition(*task, TaskState::kRunning, attempt->id, "");
    }
    // A cancel that arrived before the agent knew the attempt goes out again.
    if (task && task->cancel_requested) {
      transitions_.send_cancel_after_commit(agent, {{task->id, attempt->id}, task->cancel_reason});
    }
  }
  protocol::Ack ack;
  ack.attempt_id = attempt->id;
  ack.acked = AckedKind::kStarted;
  ack.related_message_id = message_id;
  return {std::nullopt, ack};
}

FrameVerdict AgentFrameService::on_output(const std::string& agent,
                                          const protocol::TaskOutput& output,
                                          const std::string& message_id) {
  std::optional<AttemptRecord> attempt;
  const auto& chunk = output.chunk;
  if (auto error = check_attempt(agent, output.attempt.attempt_id, message_id, attempt)) {
    return {std::move(error), std::nullopt};
  }
  StreamLedger& ledger = ledger_.stream(attempt->id, chunk.stream);
  const std::string stream_name(to_string(chunk.stream));
  switch (ledger_.classify(ledger, chunk.seq, chunk.offset)) {
    case SequenceVerdict::kDuplicate:
      return {std::nullopt, output_ack(attempt->id, chunk.stream, ledger.highest_seq)};
    case SequenceVerdict::kGap:
      return {sequence_error(ErrorCode::kOutputSequenceGap,
                             stream_name + " of " + attempt->id + ": expected seq " +
                                 std::to_string(ledger.highest_seq + 1) + ", got " +
                                 std::to_string(chunk.seq),
                             message_id, *attempt, chunk.stream, ledger),
              std::nullopt};
    case SequenceVerdict::kOffsetMismatch:
      return {
          sequence_error(ErrorCode::kOutputOffsetMismatch,
                         stream_name + " of " + attempt->id + ": seq " + std::to_string(chunk.seq) +
                             " starts at offset " + std::to_string(chunk.offset) + ", expected " +
                             std::to_string(ledger.stored_bytes),
                         message_id, *attempt, chunk.stream, ledger),
          std::nullopt};
    case SequenceVerdict::kNext:
      break;
  }
  if (attempt->state == AttemptState::kFinished) {
    auto error = protocol::error_frame(
        ErrorCode::kAttemptFinished,
        "attempt " + attempt->id + " already has its final; no more output", message_id);
    error.attempt_id = attempt->id;
    return {std::move(error), std::nullopt};
  }
  transitions_.publish_after_commit(events_.append_output(attempt->task_id, attempt->id, chunk));
  ledger_.record_data(ledger, chunk.seq, chunk.data);
  return {std::nullopt, output_ack(attempt->id, chunk.stream, ledger.highest_seq)};
}

FrameVerdict AgentFrameService::on_gap(const std::string& agent, const protocol::TaskOutputGap& gap,
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
    const ErrorCode code = verdict == SequenceVerdict::kGap ? ErrorCode::kOutputSequenceGap
                           : verdict == SequenceVerdict::kOffsetMismatch
                               ? ErrorCode::kOutputOffsetMismatch
                               : ErrorCode::kAttemptFinished;
    return {sequence_error(code,
                           "gap record " + std::to_string(gap.seq) + " of " + attempt->id +
                               " does not continue " + std::string(to_string(gap.stream)),
                           message_id, *attempt, gap.stream, ledger),
            std::nullopt};
  }
  transitions_.publish_after_commit(events_.append_gap(attempt->task_id, attempt->id, gap.stream,
                                                       gap.seq, gap.offset, gap.length));
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

FinalVerdict AgentFrameService::on_final(const std::string& agent,
                                         const protocol::TaskFinal& final_frame,
                                         const std::string& message_id) {
  FinalVerdict verdict;
  std::optional<AttemptRecord> attempt;
  std::optional<TaskRecord> task;  // read with the attempt: one round trip on PostgreSQL
  const auto& report = final_frame.report;
  if (auto error =
          check_attempt(agent, final_frame.attempt.attempt_id, message_id, attempt, &task)) {
    verdict.error = std::move(error);
    return verdict;
  }
  const std::string fingerprint = protocol::final_fingerprint(report);
  if (attempt->state == AttemptState::kFinished) {
    if (fingerprint == attempt->final_fingerprint) {
      verdict.verified = task && task->output_verified.value_or(false);
      return verdict;  // the same final again: acked again
    }
    verdict.error = protocol::error_frame(
        ErrorCode::kFinalConflict, "attempt " + attempt->id + " already has a different final",
        message_id);
    verdict.error->attempt_id = attempt->id;
    return verdict;
  }
  ledger_.refresh(attempt->id);  // a final over HTTP may reach another hub than the output
  verdict.missing = ledger_.missing(attempt->id, report);
  if (!verdict.missing.empty()) {
    const auto& first = verdict.missing.front();
    auto error = protocol::error_frame(
        ErrorCode::kOutputIncomplete,
        "final of " + attempt->id + " reports " + std::to_string(first.expected_bytes) +
            " bytes of " + std::string(to_string(first.stream)) + " but " +
            std::to_string(first.from_offset) + " are stored; send the rest first",
        message_id);
    error.attempt_id = attempt->id;
    error.stream = first.stream;
    error.highest_accepted_seq = first.from_seq - 1;
    error.next_offset = first.from_offset;
    verdict.error = std::move(error);
    return verdict;
  }
  const OutputVerification verification = ledger_.verify(attempt->id, report);
  if (!task) throw std::logic_error("attempt " + attempt->id + " has no task");
  settle(*attempt, *task, report, fingerprint, verification);
  verdict.verified = verification.verified;
  return verdict;
}

void AgentFrameService::settle(const AttemptRecord& attempt, TaskRecord& task,
                               const protocol::FinalReport& report, const std::string& fingerprint,
                               const OutputVerification& verification) {
  const std::string final_json = protocol::encode_final_report(report);
  tasks_.mark_attempt_finished(attempt.id, final_json, fingerprint,
                               report.finished_at.empty() ? core::utc_now() : report.finished_at);
  tasks_.set_final(task.id, final_json, verification.verified, verification.problems);
  transitions_.publish_after_commit(
      events_.append_final(task.id, attempt.id,
                           protocol::final_event_json(attempt.id, report, verification.verified,
                                                      verification.problems)));
  if (!verification.verified) {
    core::log_warning("tasks", attempt.id + " output not verified: " + verification.problems);
  }
  const TaskState next = state_for(report.status);
  if (next == TaskState::kLost && task.attempts_made < task.max_attempts) {
    transitions_.requeue(task, attempt.id, "the agent lost the attempt; queued again");
  } else if (is_legal_transition(task.state, next)) {
    transitions_.transition(task, next, attempt.id, report.error);
  } else {
    transitions_.transition(task, TaskState::kFailed, attempt.id,
                            "the agent reported " +
                                std::string(protocol::to_string(report.status)) +
                                " for an attempt that had started");
  }
  ledger_.forget(attempt.id);
}

protocol::HubHelloAck AgentFrameService::on_hello(const std::string& agent,
                                                  const protocol::AgentHello& hello,
                                                  const std::string& message_id,
                                                  std::vector<protocol::TaskCancel>& cancels) {
  leases_.agent_seen(agent);
  agents_.record_hello(agent, hello);

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
  std::set<std::string> mentioned_ids;
  for (const auto& [attempt_id, streams] : mentioned) {
    mentioned_ids.insert(attempt_id);
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
    ledger_.refresh(attempt_id);  // the agent's channel may have been on another hub
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
  retire_other_instances(agent, hello, mentioned_ids);
  return ack;
}

void AgentFrameService::retire_other_instances(const std::string& agent,
                                               const protocol::AgentHello& hello,
                                               const std::set<std::string>& mentioned) {
  // A new run of the agent process holds nothing of what was dispatched to
  // an earlier one, unless it says so: waiting out the lease would only
  // leave the task idle (section 8). A partial hello says nothing of what
  // it left out.
  if (hello.instance.empty() || hello.partial) return;
  for (const auto& attempt : tasks_.active_attempts_of(agent)) {
    if (mentioned.count(attempt.id) || attempt.agent_instance.empty() ||
        attempt.agent_instance == hello.instance) {
      continue;
    }
    const std::string reason = "dispatched to an earlier run of agent " + agent + " (" +
                               attempt.agent_instance + "); its new run (" + hello.instance +
                               ") does not hold it";
    if (attempt.state == AttemptState::kDispatched) {
      transitions_.retract_dispatch(attempt.id, reason);
    } else {
      transitions_.lose_attempt(attempt, reason);
    }
  }
}

}  // namespace tether::hub
