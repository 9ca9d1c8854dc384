// Wall-clock timestamps for people and logs. Durations and deadlines use the
// loop's monotonic time instead; these are only ever displayed or stored.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace tether::core {

// "2026-11-22T05:12:00.123Z": UTC, millisecond precision, sortable as text.
inline std::string format_utc(std::chrono::system_clock::time_point time) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[80];  // generous: the compiler cannot bound tm fields
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900,
                parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                static_cast<int>(millis % 1000));
  return text;
}

inline std::string utc_now() {
  return format_utc(std::chrono::system_clock::now());
}

// Milliseconds since the epoch for a time format_utc() wrote (a trailing
// fraction is optional); -1 if `text` is not one.
inline int64_t parse_utc_ms(const std::string& text) {
  std::tm parts{};
  int millis = 0;
  char zone = 0;
  const int fields =
      std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &parts.tm_year, &parts.tm_mon,
                  &parts.tm_mday, &parts.tm_hour, &parts.tm_min, &parts.tm_sec, &millis, &zone);
  if (fields != 8 || zone != 'Z') return -1;
  parts.tm_year -= 1900;
  parts.tm_mon -= 1;
  const std::time_t seconds = timegm(&parts);
  if (seconds == static_cast<std::time_t>(-1)) return -1;
  return static_cast<int64_t>(seconds) * 1000 + millis;
}

inline int64_t utc_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tether::core
