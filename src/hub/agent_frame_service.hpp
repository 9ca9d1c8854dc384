// AgentFrameService: what the hub decides about the frames an agent sends
// (docs/protocol.md 4 to 6): agent.hello, task.started, task.output,
// task.output_gap and task.final, from the WebSocket channel or (finals)
// over HTTP.
//
// Each frame is answered with a verdict: an ack, or an error frame that the
// caller sends once the turn's transaction has committed. Output is checked
// against the OutputLedger (sequence, offset) and stored as events; a final
// is verified against the stored bytes before its task's state changes
// through TaskTransitions.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hub/agent_directory.hpp"
#include "hub/event_log.hpp"
#include "hub/lease_keeper.hpp"
#include "hub/output_ledger.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_transitions.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/frames.hpp"

namespace tether::hub {

struct FrameVerdict {
  std::optional<protocol::ErrorFrame> error;  // set: reply with this error
  std::optional<protocol::Ack> ack;           // otherwise: this ack, after commit
};

struct FinalVerdict {
  std::optional<protocol::ErrorFrame> error;
  std::vector<MissingOutput> missing;  // with error output_incomplete
  bool verified = false;
};

class AgentFrameService {
 public:
  AgentFrameService(TaskRepository& tasks, EventLog& events, OutputLedger& ledger,
                    TaskTransitions& transitions, AgentDirectory& agents, LeaseKeeper& leases)
      : tasks_(tasks),
        events_(events),
        ledger_(ledger),
        transitions_(transitions),
        agents_(agents),
        leases_(leases) {}

  // Section 4.2: what the hub holds of each attempt the agent mentions
  // (resume points, finals held, attempts to discard), and cancels to send
  // again. Attempts dispatched to an earlier run of the agent and not held
  // by this one are retracted or lost.
  protocol::HubHelloAck on_hello(const std::string& agent, const protocol::AgentHello& hello,
                                 const std::string& message_id,
                                 std::vector<protocol::TaskCancel>& cancels);
  FrameVerdict on_started(const std::string& agent, const protocol::TaskStarted& started,
                          const std::string& message_id);
  FrameVerdict on_output(const std::string& agent, const protocol::TaskOutput& output,
                         const std::string& message_id);
  FrameVerdict on_gap(const std::string& agent, const protocol::TaskOutputGap& gap,
                      const std::string& message_id);
  FinalVerdict on_final(const std::string& agent, const protocol::TaskFinal& final_frame,
                        const std::string& message_id);

 private:
  // The attempt `agent` may send frames for, or the error to send instead;
  // with `task`, the attempt's task too, read with it.
  std::optional<protocol::ErrorFrame> check_attempt(const std::string& agent,
                                                    const std::string& attempt_id,
                                                    const std::string& message_id,
                                                    std::optional<AttemptRecord>& attempt,
                                                    std::optional<TaskRecord>* task = nullptr);
  // A sequence or offset error for a frame that does not continue its stream.
  protocol::ErrorFrame sequence_error(protocol::ErrorCode code, std::string message,
                                      const std::string& message_id, const AttemptRecord& attempt,
                                      protocol::StreamName stream, const StreamLedger& ledger);
  // The verified final is stored: the task (the attempt's, as read with it)
  // moves on (or is queued again).
  void settle(const AttemptRecord& attempt, TaskRecord& task, const protocol::FinalReport& report,
              const std::string& fingerprint, const OutputVerification& verification);
  void retire_other_instances(const std::string& agent, const protocol::AgentHello& hello,
                              const std::set<std::string>& mentioned);

  TaskRepository& tasks_;
  EventLog& events_;
  OutputLedger& ledger_;
  TaskTransitions& transitions_;
  AgentDirectory& agents_;
  LeaseKeeper& leases_;
};

}  // namespace tether::hub
