// HeldTargets: the targets held on one agent while its queue is walked, and
// whether a target conflicts with one of them (protocol/task_target.hpp).
//
// A sorted set answers in O(depth * log n): a target conflicts with a held
// one when it is held, one of its ancestors is, or a held target begins with
// its descendant prefix. The dispatch asks once per queued task, so a long
// queue costs O(n log n), not the O(n^2) of comparing every pair.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <string_view>

namespace tether::hub {

class HeldTargets {
 public:
  // An empty target holds nothing and is not kept.
  void add(const std::string& target);
  // Whether `target` conflicts with a held target; never for an empty one.
  bool conflicts(std::string_view target) const;

 private:
  std::set<std::string, std::less<>> targets_;  // std::less<>: lookups by string_view
};

}  // namespace tether::hub
