// EventHub: live subscribers per task or run (SSE streams): an event of a
// task in a run reaches the viewers of both. Events are published
// only after they are committed, in the order they were stored.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "hub/event_log.hpp"

namespace tether::hub {

class EventHub {
 public:
  using Listener = std::function<void(const std::shared_ptr<const StoredEvent>&)>;

  uint64_t subscribe(const std::string& task_id, Listener listener);
  void unsubscribe(uint64_t id);
  void publish(const std::shared_ptr<const StoredEvent>& event);
  size_t subscribers() const { return listeners_.size(); }
  // True if someone subscribed to `task_id` (a task's or a run's id).
  bool watched(const std::string& task_id) const { return by_task_.count(task_id) > 0; }

 private:
  struct Subscription {
    std::string task_id;
    Listener listener;
  };
  uint64_t next_id_ = 1;
  std::map<uint64_t, Subscription> listeners_;
  std::multimap<std::string, uint64_t> by_task_;
};

}  // namespace tether::hub
