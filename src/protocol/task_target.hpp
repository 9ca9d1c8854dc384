// A task's target (docs/protocol.md 3): what its attempt holds exclusively
// on its agent while it runs.
//
// The rule (issue "[5/8] Fleet", item 3, modelled on flatrun's deployment
// and service actions):
//   - a target is a path of segments separated by '/' ("deploy/web"): each
//     segment non-empty (no leading, trailing or double '/'), at most
//     kMaxTargetLength bytes in all, no NUL;
//   - two targets conflict when they are equal or one is an ancestor of the
//     other at a segment boundary: "app" conflicts with "app/web" and
//     "app/web/x"; "app/web" and "app/db" do not, nor "app" and "application";
//   - the empty target holds nothing: no exclusivity.
// The agent's TaskExecutor and the hub's DispatchService (through
// hub::HeldTargets when it walks a queue) apply this same rule.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tether::protocol {

inline constexpr size_t kMaxTargetLength = 256;  // bytes

// Why `target` is not a valid target, for a message after "task.target: ";
// empty when it is valid. The empty target is valid.
std::string target_problem(std::string_view target);
inline bool is_valid_target(std::string_view target) {
  return target_problem(target).empty();
}

// Whether attempts with targets `a` and `b` may not run at once on one agent:
// both non-empty and equal, or one a proper ancestor of the other ending at a
// '/' of the longer ("app" and "app/web", not "app" and "application").
// Symmetric; bytes are compared as they are (no case folding, no
// normalisation). Defined for any strings, valid or not, so that targets
// stored under an older rule are still compared.
bool targets_conflict(std::string_view a, std::string_view b);

// The targets a conflicting one may be, for lookups in a sorted set instead
// of a scan (targets_conflict(a, b) holds exactly when a and b are non-empty
// and a is b, or one of b's ancestors, or begins with b's descendant prefix):
//   - target_ancestors("a/b/c") is {"a", "a/b"}: the prefixes of `target`
//     that end just before a '/', outermost first (views into `target`);
//   - descendant_prefix("a/b") is "a/b/": every target below it begins so.
std::vector<std::string_view> target_ancestors(std::string_view target);
std::string descendant_prefix(std::string_view target);

}  // namespace tether::protocol
