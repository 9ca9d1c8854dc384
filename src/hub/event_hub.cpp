#include "hub/event_hub.hpp"

#include <vector>

namespace tether::hub {

uint64_t EventHub::subscribe(const std::string& task_id, Listener listener) {
  const uint64_t id = next_id_++;
  listeners_.emplace(id, Subscription{task_id, std::move(listener)});
  by_task_.emplace(task_id, id);
  return id;
}

void EventHub::unsubscribe(uint64_t id) {
  auto it = listeners_.find(id);
  if (it == listeners_.end()) return;
  auto [first, last] = by_task_.equal_range(it->second.task_id);
  for (auto entry = first; entry != last; ++entry) {
    if (entry->second == id) {
      by_task_.erase(entry);
      break;
    }
  }
  listeners_.erase(it);
}

void EventHub::publish(const std::shared_ptr<const StoredEvent>& event) {
  // A listener may unsubscribe (itself or others) while we deliver.
  // Viewers of the task, and of its run (a run's own events name the run
  // as their task: they reach its viewers once).
  std::vector<uint64_t> ids;
  auto [first, last] = by_task_.equal_range(event->task_id);
  for (auto entry = first; entry != last; ++entry)
    ids.push_back(entry->second);
  if (!event->run_id.empty() && event->run_id != event->task_id) {
    auto [run_first, run_last] = by_task_.equal_range(event->run_id);
    for (auto entry = run_first; entry != run_last; ++entry)
      ids.push_back(entry->second);
  }
  for (uint64_t id : ids) {
    auto it = listeners_.find(id);
    if (it != listeners_.end()) it->second.listener(event);
  }
}

}  // namespace tether::hub
