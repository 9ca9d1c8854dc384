#include "core/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/wall_clock.hpp"

namespace tether::core {

namespace {

std::atomic<LogLevel> current_level{LogLevel::kInfo};
std::mutex output_mutex;

bool under_journald() {
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  return journald;
}

// syslog(3) priorities: debug 7, info 6, warning 4, error 3.
int syslog_priority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 7;
    case LogLevel::kInfo:
      return 6;
    case LogLevel::kWarning:
      return 4;
    case LogLevel::kError:
      return 3;
  }
  return 6;
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

}  // namespace

void set_log_level(LogLevel level) {
  current_level = level;
}
LogLevel log_level() {
  return current_level;
}

bool parse_log_level(std::string_view text, LogLevel& out) {
  if (text == "debug")
    out = LogLevel::kDebug;
  else if (text == "info")
    out = LogLevel::kInfo;
  else if (text == "warning" || text == "warn")
    out = LogLevel::kWarning;
  else if (text == "error")
    out = LogLevel::kError;
  else
    return false;
  return true;
}

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (level < current_level.load()) return;
  std::string line;
  if (under_journald()) {
    line = "<" + std::to_string(syslog_priority(level)) + ">";
  } else {
    line = utc_now() + " " + level_name(level) + " ";
  }
  line.append(component);
  line += ": ";
  line.append(message);
  line += '\n';
  std::lock_guard lock(output_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace tether::core
