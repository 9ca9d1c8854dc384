#include "core/proc_info.hpp"

#include <fstream>
#include <sstream>

namespace tether::core {

std::optional<uint64_t> process_start_ticks(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return std::nullopt;
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // The command name (field 2) may contain spaces and parentheses; fields
  // after it start after the last ')'.
  const auto close = content.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(content.substr(close + 2));
  std::string field;
  // Field 3 is the first after ')'; the start time is field 22.
  for (int index = 3; index <= 22; ++index) {
    if (!(fields >> field)) return std::nullopt;
  }
  try {
    return std::stoull(field);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string boot_id() {
  std::ifstream file("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(file, id);
  return id;
}

}  // namespace tether::core
