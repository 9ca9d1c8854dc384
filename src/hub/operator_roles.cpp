#include "hub/operator_roles.hpp"

#include <fnmatch.h>

#include <algorithm>

namespace tether::hub {

namespace {

constexpr size_t kMaxPatterns = 32;
constexpr size_t kMaxPatternLength = 128;
constexpr size_t kMaxNameLength = 64;

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool is_pattern_char(char c) {
  static constexpr std::string_view kGlob = "*?[]!:";
  return is_name_char(c) || kGlob.find(c) != std::string_view::npos;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace

std::string_view to_string(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    case Role::kViewer:
      break;
  }
  return "viewer";
}

std::optional<Role> parse_role(std::string_view text) {
  for (Role role : {Role::kAdmin, Role::kOperator, Role::kViewer}) {
    if (to_string(role) == text) return role;
  }
  return std::nullopt;
}

std::string_view to_string(Permission permission) {
  switch (permission) {
    case Permission::kRead:
      return "read";
    case Permission::kSubmit:
      return "submit";
    case Permission::kCancel:
      return "cancel";
    case Permission::kRemoveAgent:
      return "remove agents";
    case Permission::kReadAudit:
      break;
  }
  return "read the audit trail";
}

bool role_allows(Role role, Permission permission) {
  switch (role) {
    case Role::kAdmin:
      return true;
    case Role::kOperator:
      return permission == Permission::kRead || permission == Permission::kSubmit ||
             permission == Permission::kCancel;
    case Role::kViewer:
      break;
  }
  return permission == Permission::kRead;
}

bool Principal::may_reach_agent(std::string_view agent) const {
  if (role != Role::kOperator || agent_patterns.empty()) return true;
  const std::string name(agent);
  for (const auto& pattern : agent_patterns) {
    if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

std::optional<std::string> Principal::refusal(Permission permission) const {
  if (role_allows(role, permission)) return std::nullopt;
  std::string who;
  for (Role candidate : {Role::kAdmin, Role::kOperator, Role::kViewer}) {
    if (!role_allows(candidate, permission)) continue;
    who += (who.empty() ? "" : " or ") + std::string(to_string(candidate));
  }
  return "token '" + name + "' has role " + std::string(to_string(role)) + ", which may not " +
         std::string(to_string(permission)) + " (that needs role " + who + ")";
}

std::optional<std::string> Principal::agent_refusal(std::string_view agent,
                                                    std::string_view subject) const {
  if (may_reach_agent(agent)) return std::nullopt;
  return "token '" + name + "' (role operator) may only act on agents matching " +
         format_agent_patterns(agent_patterns) + "; " + std::string(subject) +
         " matches none of them";
}

Result<void> check_token_name(std::string_view name) {
  bool valid = !name.empty() && name.size() <= kMaxNameLength;
  for (char c : name)
    valid = valid && is_name_char(c);
  if (!valid) {
    return make_error(
        Errc::kInvalid, "invalid_name",
        "name: '" + std::string(name) + "' must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  }
  bool id_like = name.size() == 15 && name.substr(0, 3) == "op-";
  for (size_t i = 3; id_like && i < name.size(); ++i)
    id_like = is_hex(name[i]);
  if (id_like) {
    return make_error(Errc::kInvalid, "invalid_name",
                      "name: '" + std::string(name) +
                          "' has the form of a token id (op- and 12 hex digits); choose another");
  }
  return {};
}

Result<std::vector<std::string>> parse_agent_patterns(std::string_view text) {
  std::vector<std::string> patterns;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string pattern(text.substr(start, comma - start));
    bool valid = !pattern.empty() && pattern.size() <= kMaxPatternLength;
    for (char c : pattern)
      valid = valid && is_pattern_char(c);
    if (!valid) {
      return make_error(Errc::kInvalid, "invalid_field",
                        "agents: pattern '" + pattern +
                            "' must be 1 to 128 characters of A-Z a-z 0-9 . _ : - and the glob "
                            "characters * ? [ ] ! (patterns are separated by single commas)");
    }
    patterns.push_back(pattern);
    start = comma + 1;
  }
  if (patterns.size() > kMaxPatterns) {
    return make_error(Errc::kInvalid, "invalid_field",
                      "agents: " + std::to_string(patterns.size()) + " patterns; at most " +
                          std::to_string(kMaxPatterns));
  }
  return patterns;
}

std::string format_agent_patterns(const std::vector<std::string>& patterns) {
  std::string text;
  for (const auto& pattern : patterns)
    text += (text.empty() ? "" : ",") + pattern;
  return text;
}

}  // namespace tether::hub
