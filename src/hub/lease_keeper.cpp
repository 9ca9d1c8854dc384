#include "hub/lease_keeper.hpp"

#include <algorithm>

namespace tether::hub {

LeaseKeeper::LeaseKeeper(TaskRepository& tasks, TaskTransitions& transitions,
                         AgentDirectory& agents, int64_t lease_ms, Clock clock)
    : tasks_(tasks),
      transitions_(transitions),
      agents_(agents),
      lease_ms_(lease_ms),
      clock_(clock),
      started_ms_(clock()) {}

void LeaseKeeper::agent_seen(const std::string& agent) {
  last_seen_ms_[agent] = clock_();
}

std::optional<int64_t> LeaseKeeper::last_seen_ms(const std::string& agent) const {
  auto it = last_seen_ms_.find(agent);
  if (it == last_seen_ms_.end()) return std::nullopt;
  return it->second;
}

void LeaseKeeper::share_seen(int64_t now) {
  const int64_t every = std::max<int64_t>(lease_ms_ / 4, 1);
  // Connected agents are seen now: one statement for all of them that are
  // due (thousands of agents connected together come due together).
  std::vector<std::string> seen_now;
  for (auto& [agent, seen] : last_seen_ms_) {
    // A connected agent is seen now, frames or not (its pings keep the channel).
    const bool connected = transitions_.is_connected(agent);
    if (connected) seen = now;
    int64_t& shared = shared_ms_[agent];
    if (seen <= shared || seen - shared < every) continue;
    if (connected) {
      seen_now.push_back(agent);
    } else {
      agents_.record_seen(agent, seen);
    }
    shared = seen;
  }
  if (!seen_now.empty()) agents_.record_seen_all(seen_now, now);
}

bool LeaseKeeper::gone(const AttemptRecord& attempt, int64_t now) {
  if (transitions_.is_connected(attempt.agent)) return false;
  auto seen = last_seen_ms_.find(attempt.agent);
  int64_t last = std::max(seen == last_seen_ms_.end() ? 0 : seen->second, started_ms_);
  if (now - last <= lease_ms_) return false;
  if (agents_.seen_is_shared())
    last = std::max(last, agents_.seen_at_ms(attempt.agent).value_or(0));
  return now - last > lease_ms_;
}

bool LeaseKeeper::online(const std::string& agent) {
  if (transitions_.is_connected(agent)) return true;
  if (!agents_.seen_is_shared()) return false;
  auto seen = agents_.seen_at_ms(agent);
  return seen && clock_() - *seen <= lease_ms_ / 2;
}

void LeaseKeeper::check_leases() {
  const int64_t now = clock_();
  if (agents_.seen_is_shared()) share_seen(now);
  const std::string lease = std::to_string(lease_ms_ / 1000) + " s lease";
  for (const auto& attempt : tasks_.active_attempts()) {
    std::string reason;
    if (attempt.state == AttemptState::kDispatched && now - attempt.dispatched_at_ms > lease_ms_) {
      reason = "not started within the " + lease;
    } else if (gone(attempt, now)) {
      reason = "agent " + attempt.agent + " gone for more than the " + lease;
    } else {
      continue;
    }
    if (tasks_.claim_active_attempt(attempt.id)) transitions_.lose_attempt(attempt, reason);
  }
}

}  // namespace tether::hub
