// Logging for daemons: one line per event on stderr.
//
// Under systemd (JOURNAL_STREAM is set) each line starts with a syslog
// priority prefix ("<4>") and carries no timestamp, since journald adds its
// own. Elsewhere a line starts with a UTC timestamp and the level name.
// Messages must never contain secrets: callers log names and ids, not tokens.
#pragma once

#include <string>
#include <string_view>

namespace tether::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
// "debug", "info", "warning" or "error"; false if unknown.
bool parse_log_level(std::string_view text, LogLevel& out);

void log(LogLevel level, std::string_view component, std::string_view message);

inline void log_debug(std::string_view component, std::string_view message) {
  log(LogLevel::kDebug, component, message);
}
inline void log_info(std::string_view component, std::string_view message) {
  log(LogLevel::kInfo, component, message);
}
inline void log_warning(std::string_view component, std::string_view message) {
  log(LogLevel::kWarning, component, message);
}
inline void log_error(std::string_view component, std::string_view message) {
  log(LogLevel::kError, component, message);
}

}  // namespace tether::core
