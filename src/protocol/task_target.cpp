#include "protocol/task_target.hpp"

namespace tether::protocol {

std::string target_problem(std::string_view target) {
  if (target.size() > kMaxTargetLength) {
    return "longer than " + std::to_string(kMaxTargetLength) + " bytes";
  }
  if (target.find('\0') != std::string_view::npos) return "contains a NUL byte";
  if (target.empty()) return {};
  if (target.front() == '/' || target.back() == '/' ||
      target.find("//") != std::string_view::npos) {
    return "'" + std::string(target) +
           "' has an empty segment: segments are separated by single '/' (no leading, trailing "
           "or double '/')";
  }
  return {};
}

bool targets_conflict(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return false;
  const std::string_view shorter = a.size() <= b.size() ? a : b;
  const std::string_view longer = a.size() <= b.size() ? b : a;
  if (longer.substr(0, shorter.size()) != shorter) return false;
  return longer.size() == shorter.size() || longer[shorter.size()] == '/';
}

std::vector<std::string_view> target_ancestors(std::string_view target) {
  std::vector<std::string_view> ancestors;
  for (size_t slash = target.find('/'); slash != std::string_view::npos;
       slash = target.find('/', slash + 1)) {
    ancestors.push_back(target.substr(0, slash));
  }
  return ancestors;
}

std::string descendant_prefix(std::string_view target) {
  return std::string(target) + '/';
}

}  // namespace tether::protocol
