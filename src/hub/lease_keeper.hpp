// LeaseKeeper: agent liveness and attempt leases (docs/protocol.md 8).
//
// An agent is seen on every authenticated request or frame. An attempt
// dispatched and not started within the lease, or whose agent has been
// neither connected nor seen for longer than the lease, is declared lost
// (TaskTransitions::lose_attempt). After a hub restart every agent gets a
// full lease to come back.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "hub/task_repository.hpp"
#include "hub/task_transitions.hpp"

namespace tether::hub {

class LeaseKeeper {
 public:
  LeaseKeeper(TaskRepository& tasks, TaskTransitions& transitions, int64_t lease_ms);

  // Liveness: any authenticated request or frame from the agent.
  void agent_seen(const std::string& agent);
  // When the agent was last seen by this process (wall clock, ms).
  std::optional<int64_t> last_seen_ms(const std::string& agent) const;
  // Declares lost the attempts whose lease ran out.
  void check_leases();
  int64_t lease_ms() const { return lease_ms_; }

 private:
  TaskRepository& tasks_;
  TaskTransitions& transitions_;
  int64_t lease_ms_;
  std::map<std::string, int64_t> last_seen_ms_;
  int64_t started_ms_;
};

}  // namespace tether::hub
