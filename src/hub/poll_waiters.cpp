#include "hub/poll_waiters.hpp"

#include "core/log.hpp"
#include "protocol/api_error.hpp"
#include "protocol/task_spec.hpp"

namespace tether::hub {

core::HttpResponse unavailable_response(int status, const std::string& code,
                                        const std::string& message, int retry_after_s) {
  auto response = core::json_response(status, protocol::api_error_body(code, message, true));
  response.headers.emplace_back("retry-after", std::to_string(retry_after_s));
  return response;
}

bool PollWaiters::answer(const std::string& agent, const std::string& instance,
                         const std::shared_ptr<core::HttpExchange>& exchange) {
  auto spec = dispatch_.dispatch_next(agent, instance);
  if (!spec) return false;
  const uint64_t lease_s = static_cast<uint64_t>(lease_ms_ / 1000);
  std::string body = protocol::encode_task(*spec, lease_s);
  store_.after_commit(
      [this, exchange, attempt_id = spec->attempt_id, body = std::move(body)]() mutable {
        // Closed before the whole answer was out: the agent cannot have the
        // task, so it goes back to the queue now, not when the lease ends.
        exchange->set_on_closed([this, attempt_id] {
          retract_later(attempt_id, "the poll's connection closed before the task was sent");
        });
        exchange->respond(core::json_response(200, std::move(body)));
      });
  return true;
}

void PollWaiters::retract_later(const std::string& attempt_id, const std::string& reason) {
  const auto outcome = store_.guarded("retracting " + attempt_id,
                                      [&] { dispatch_.retract_dispatch(attempt_id, reason); });
  if (outcome == core::SqlStore::Outcome::kBusy) {
    busy_.later([this, attempt_id, reason] { retract_later(attempt_id, reason); });
  }
}

void PollWaiters::drop_departed(const std::string& agent) {
  auto [first, last] = parked_.equal_range(agent);
  std::vector<std::shared_ptr<Waiter>> departed;
  for (auto it = first; it != last; ++it) {
    if (!it->second->exchange->is_open() || it->second->exchange->peer_closed()) {
      departed.push_back(it->second);
    }
  }
  for (const auto& waiter : departed) {
    remove(waiter);
    ++departed_;
    core::log_info("polls", agent + ": a parked poll's client has gone; dropped");
  }
}

void PollWaiters::poll(const std::string& agent, const std::string& instance,
                       std::shared_ptr<core::HttpExchange> exchange, int wait_s) {
  if (shutting_down_) {
    exchange->respond(unavailable_response(503, "unavailable", "the hub is shutting down", 5));
    return;
  }
  drop_departed(agent);
  if (answer(agent, instance, exchange)) return;
  wait_s = std::clamp(wait_s, 0, kMaxPollWaitSeconds);
  if (wait_s == 0) {
    exchange->respond(core::json_response(204, ""));
    return;
  }
  if (parked_.count(agent) >= kMaxParkedPollsPerAgent) {
    exchange->respond(unavailable_response(429, "rate_limited",
                                           "agent " + agent + " already has " +
                                               std::to_string(kMaxParkedPollsPerAgent) +
                                               " polls waiting",
                                           1));
    return;
  }
  auto waiter = std::make_shared<Waiter>();
  waiter->agent = agent;
  waiter->instance = instance;
  waiter->exchange = exchange;
  waiter->timer = std::make_unique<core::Timer>(loop_);
  std::weak_ptr<Waiter> weak = waiter;
  waiter->timer->start(static_cast<uint64_t>(wait_s) * 1000, [this, weak] {
    if (auto live = weak.lock()) {
      live->exchange->respond(core::json_response(204, ""));
      remove(live);
    }
  });
  exchange->set_on_closed([this, weak] {
    if (auto live = weak.lock()) remove(live);
  });
  parked_.emplace(agent, std::move(waiter));
}

void PollWaiters::pool_task_queued() {
  std::vector<protocol::Selector> selectors;
  auto read = [&] { selectors = dispatch_.queued_pool_selectors(); };
  if (store_.guarded("pool tasks", read) != core::SqlStore::Outcome::kDone) {
    busy_.later([this] { pool_task_queued(); });
    return;
  }
  for (const auto& name : parked_agents()) {
    if (selectors.empty()) return;
    protocol::Labels labels;
    auto labels_of = [&] { labels = agents_.labels_of(name); };
    if (store_.guarded("labels of " + name, labels_of) != core::SqlStore::Outcome::kDone) {
      continue;
    }
    const bool matches =
        std::any_of(selectors.begin(), selectors.end(),
                    [&](const protocol::Selector& s) { return s.matches(labels); });
    if (!matches) continue;
    task_queued(name);
    if (store_.guarded("pool tasks", read) != core::SqlStore::Outcome::kDone) return;
  }
}

void PollWaiters::task_queued(const std::string& agent) {
  if (agent.empty()) {
    pool_task_queued();
    return;
  }
  drop_departed(agent);
  auto it = parked_.find(agent);  // the oldest parked poll of this agent still there
  if (it == parked_.end()) {
    channels_.send_wake(agent);
    return;
  }
  auto waiter = it->second;
  bool answered = false;
  // An entry point of its own (it runs after another request's commit).
  const auto outcome = store_.guarded("dispatch to " + agent, [&] {
    answered = answer(agent, waiter->instance, waiter->exchange);
  });
  if (outcome == core::SqlStore::Outcome::kBusy) {
    // hub.db is locked elsewhere for a moment: the poll stays parked and
    // the dispatch is tried again.
    busy_.later([this, agent] { task_queued(agent); });
    return;
  }
  remove(waiter);
  if (outcome == core::SqlStore::Outcome::kFailed) {
    waiter->exchange->respond(
        unavailable_response(503, "storage_unavailable", "the hub could not dispatch; retry", 1));
  } else if (!answered) {
    waiter->exchange->respond(core::json_response(204, ""));
  }
}

void PollWaiters::wake_all() {
  pool_task_queued();
  for (const auto& name : parked_agents())
    task_queued(name);
}

std::vector<std::string> PollWaiters::parked_agents() const {
  std::vector<std::string> names;  // parked_ is sorted by agent: each name once
  for (const auto& [name, waiter] : parked_) {
    if (names.empty() || names.back() != name) names.push_back(name);
  }
  return names;
}

void PollWaiters::remove(const std::shared_ptr<Waiter>& waiter) {
  auto [first, last] = parked_.equal_range(waiter->agent);
  for (auto it = first; it != last; ++it) {
    if (it->second == waiter) {
      parked_.erase(it);
      break;
    }
  }
  waiter->timer->stop();
}

void PollWaiters::shutdown() {
  shutting_down_ = true;
  busy_.stop();
  auto parked = std::move(parked_);
  parked_.clear();
  for (auto& [agent, waiter] : parked) {
    waiter->timer->stop();
    waiter->exchange->respond(
        unavailable_response(503, "unavailable", "the hub is shutting down", 5));
  }
}

}  // namespace tether::hub
