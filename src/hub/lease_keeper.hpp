// LeaseKeeper: agent liveness and attempt leases (docs/protocol.md 8).
//
// An agent is seen on every authenticated request or frame. An attempt
// dispatched and not started within the lease, or whose agent has been
// neither connected nor seen for longer than the lease, is declared lost
// (TaskTransitions::lose_attempt). After a hub restart every agent gets a
// full lease to come back.
//
// Where several hubs serve one database (AgentDirectory::seen_is_shared),
// an agent may be connected to, and seen by, another hub: each hub stores
// when it saw its agents (agents.seen_at_ms, at most every quarter lease,
// so a connected agent's time is never more than a quarter lease old), and
// a hub declares an attempt lost only when neither it nor the stored time
// has seen the agent within the lease. The attempt is claimed first
// (TaskRepository::claim_active_attempt), so it is declared lost once.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "hub/agent_directory.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_transitions.hpp"

namespace tether::hub {

class LeaseKeeper {
 public:
  using Clock = int64_t (*)();  // wall clock, ms since the epoch
  LeaseKeeper(TaskRepository& tasks, TaskTransitions& transitions, AgentDirectory& agents,
              int64_t lease_ms, Clock clock = &wall_clock_ms);

  // Liveness: any authenticated request or frame from the agent.
  void agent_seen(const std::string& agent);
  // When the agent was last seen by this process (wall clock, ms).
  std::optional<int64_t> last_seen_ms(const std::string& agent) const;
  // Declares lost the attempts whose lease ran out; with other hubs, first
  // stores when this one saw its agents. Runs in the caller's turn.
  void check_leases();
  int64_t lease_ms() const { return lease_ms_; }
  // True if `agent` has a channel open to this hub or, with other hubs,
  // one of them stored it seen within half a lease (two of their refreshes).
  bool online(const std::string& agent);

 private:
  void share_seen(int64_t now);
  bool gone(const AttemptRecord& attempt, int64_t now);

  TaskRepository& tasks_;
  TaskTransitions& transitions_;
  AgentDirectory& agents_;
  int64_t lease_ms_;
  Clock clock_;
  std::map<std::string, int64_t> last_seen_ms_;
  // What this hub last stored in agents.seen_at_ms, per agent.
  std::map<std::string, int64_t> shared_ms_;
  int64_t started_ms_;
};

}  // namespace tether::hub
