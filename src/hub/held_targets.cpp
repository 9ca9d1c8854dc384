#include "hub/held_targets.hpp"

#include "protocol/task_target.hpp"

namespace tether::hub {

void HeldTargets::add(const std::string& target) {
  if (!target.empty()) targets_.insert(target);
}

bool HeldTargets::conflicts(std::string_view target) const {
  if (target.empty()) return false;
  if (targets_.count(target) != 0) return true;
  for (const std::string_view ancestor : protocol::target_ancestors(target)) {
    if (targets_.count(ancestor) != 0) return true;
  }
  // Every held target below `target` sorts from its descendant prefix on, together.
  const std::string below = protocol::descendant_prefix(target);
  const auto first = targets_.lower_bound(below);
  return first != targets_.end() && first->compare(0, below.size(), below) == 0;
}

}  // namespace tether::hub
