// TaskService: what the hub decides about tasks and attempts.
//
// Every change of a task's state goes through transition(): it checks the
// change against the legal transitions, writes it, stores a status event and
// publishes it to live viewers once committed. No other code writes a task's
// state.
//
// Agent frames are answered with verdicts (ack through a seq, or an error
// frame) that the channel sends once the turn's transaction has committed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "hub/output_ledger.hpp"
#include "hub/task_repository.hpp"
#include "hub/tokens.hpp"
#include "protocol/frames.hpp"

namespace tether::hub {

struct TaskServiceOptions {
  int64_t lease_ms = 60'000;
};

struct SubmitRequest {
  std::string agent;
  protocol::TaskSpec spec;  // task_id and attempt_id are ignored
  bool reject_on_conflict = false;
  int max_attempts = 1;
};

// Callbacks into the parts that talk to agents.
struct AgentNotifier {
  std::function<bool(const std::string& agent)> is_connected;
  std::function<void(const std::string& agent, const protocol::TaskCancel& cancel)> send_cancel;
  std::function<void(const std::string& agent)> task_queued;  // wake a poll or send hub.wake
};

struct FrameVerdict {
  std::optional<protocol::ErrorFrame> error;  // set: reply with this error
  std::optional<protocol::Ack> ack;           // otherwise: this ack, after commit
};

struct MissingOutput {
  protocol::StreamName stream;
  uint64_t from_seq = 0;
  uint64_t from_offset = 0;
  uint64_t expected_bytes = 0;
};

struct FinalVerdict {
  std::optional<protocol::ErrorFrame> error;
  std::vector<MissingOutput> missing;  // with error output_incomplete
  bool verified = false;
};

class TaskService {
 public:
  TaskService(HubStore& store, TaskRepository& tasks, EventLog& events, EventHub& hub,
              OutputLedger& ledger, TaskServiceOptions options);

  void set_notifier(AgentNotifier notifier) { notifier_ = std::move(notifier); }

  // Operator side. Errors: "unknown_agent", "target_busy" (message names the
  // active task), "invalid_field".
  Result<TaskRecord> submit(const SubmitRequest& request);
  // Errors: "not_found", "already_finished".
  Result<TaskRecord> cancel(const std::string& task_id, const std::string& reason);
  // The agent is being removed: its queued tasks end `cancelled`, its
  // dispatched and running ones `lost`, each with the note "agent NAME was
  // removed" (no retry: there is no agent to retry on). How many ended.
  int end_tasks_of_removed_agent(const std::string& agent);

  // Agent side.
  // The next task for `agent`'s poll; `instance` is the agent process that
  // polled (empty if it did not say), remembered with the attempt.
  std::optional<protocol::TaskSpec> dispatch_next(const std::string& agent,
                                                  const std::string& instance);
  // A dispatch that never reached the agent (its poll's connection closed
  // before the answer was out, or a new run of the agent does not hold it):
  // the attempt is retracted and the task queued again at once. It does not
  // use up one of max_attempts (up to kMaxRetractions times per task).
  void retract_dispatch(const std::string& attempt_id, const std::string& reason);
  static constexpr int kMaxRetractions = 10;
  FrameVerdict on_started(const std::string& agent, const protocol::TaskStarted& started,
                          const std::string& message_id);
  FrameVerdict on_output(const std::string& agent, const protocol::TaskOutput& output,
                         const std::string& message_id);
  FrameVerdict on_gap(const std::string& agent, const protocol::TaskOutputGap& gap,
                      const std::string& message_id);
  FinalVerdict on_final(const std::string& agent, const protocol::TaskFinal& final_frame,
                        const std::string& message_id);
  protocol::HubHelloAck on_hello(const std::string& agent, const protocol::AgentHello& hello,
                                 const std::string& message_id,
                                 std::vector<protocol::TaskCancel>& cancels);

  // Liveness: any authenticated request or frame from the agent.
  void agent_seen(const std::string& agent);
  std::optional<int64_t> last_seen_ms(const std::string& agent) const;
  // Declares lost the attempts whose lease ran out (docs/protocol.md 8).
  void check_leases();
  int64_t lease_ms() const { return options_.lease_ms; }

 private:
  // The one place a task's state changes.
  void transition(TaskRecord& task, TaskState to, const std::string& attempt_id,
                  const std::string& note);
  void publish_after_commit(std::shared_ptr<const StoredEvent> event);
  // Declares an attempt lost and queues its task again if attempts are left
  // (always, within kMaxRetractions, when `counts` is false).
  void lose_attempt(const AttemptRecord& attempt, const std::string& reason, bool counts = true);
  // The attempt `agent` may send frames for, or the error to send instead.
  std::optional<protocol::ErrorFrame> check_attempt(const std::string& agent,
                                                    const std::string& attempt_id,
                                                    const std::string& message_id,
                                                    std::optional<AttemptRecord>& attempt);

  HubStore& store_;
  TaskRepository& tasks_;
  EventLog& events_;
  EventHub& hub_;
  OutputLedger& ledger_;
  TaskServiceOptions options_;
  AgentNotifier notifier_;
  std::map<std::string, int64_t> last_seen_ms_;
  int64_t started_ms_;
};

// Builds an error frame.
protocol::ErrorFrame error_frame(std::string code, std::string message, bool retryable,
                                 std::string related_message_id = {});

}  // namespace tether::hub
