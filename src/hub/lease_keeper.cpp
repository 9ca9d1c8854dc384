#include "hub/lease_keeper.hpp"

#include <algorithm>

namespace tether::hub {

LeaseKeeper::LeaseKeeper(TaskRepository& tasks, TaskTransitions& transitions, int64_t lease_ms)
    : tasks_(tasks), transitions_(transitions), lease_ms_(lease_ms), started_ms_(wall_clock_ms()) {}

void LeaseKeeper::agent_seen(const std::string& agent) {
  last_seen_ms_[agent] = wall_clock_ms();
}

std::optional<int64_t> LeaseKeeper::last_seen_ms(const std::string& agent) const {
  auto it = last_seen_ms_.find(agent);
  if (it == last_seen_ms_.end()) return std::nullopt;
  return it->second;
}

void LeaseKeeper::check_leases() {
  const int64_t now = wall_clock_ms();
  const std::string lease = std::to_string(lease_ms_ / 1000) + " s lease";
  for (const auto& attempt : tasks_.active_attempts()) {
    if (attempt.state == AttemptState::kDispatched && now - attempt.dispatched_at_ms > lease_ms_) {
      transitions_.lose_attempt(attempt, "not started within the " + lease);
      continue;
    }
    const bool connected = transitions_.is_connected(attempt.agent);
    auto seen = last_seen_ms_.find(attempt.agent);
    const int64_t last = std::max(seen == last_seen_ms_.end() ? 0 : seen->second, started_ms_);
    if (!connected && now - last > lease_ms_) {
      transitions_.lose_attempt(attempt,
                                "agent " + attempt.agent + " gone for more than the " + lease);
    }
  }
}

}  // namespace tether::hub
