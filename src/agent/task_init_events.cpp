#include "agent/task_init_events.hpp"

#include <charconv>

namespace tether::agent {

std::optional<TaskInitEvent> parse_task_init_line(std::string_view line) {
  auto word = [&line]() {
    const size_t space = line.find(' ');
    std::string_view first = line.substr(0, space);
    line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    return first;
  };
  auto number = [&word](int64_t& out) {
    const std::string_view text = word();
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc() && end == text.data() + text.size() && !text.empty();
  };
  TaskInitEvent event;
  const std::string_view kind = word();
  int64_t a = 0;
  int64_t b = 0;
  if (kind == "started" && number(a)) {
    event.kind = TaskInitEvent::Kind::kStarted;
    event.pid = static_cast<int>(a);
  } else if (kind == "failed" && number(a)) {
    event.kind = TaskInitEvent::Kind::kFailed;
    event.error = static_cast<int>(a);
    event.stage = std::string(word());
    if (event.stage != "exec" && event.stage != "cgroup" && event.stage != "user" &&
        event.stage != "cwd" && event.stage != "plan")
      return std::nullopt;
  } else if (kind == "exited" && number(a) && number(b)) {
    event.kind = TaskInitEvent::Kind::kExited;
    event.exit_code = a;
    event.signal = static_cast<int>(b);
  } else if (kind == "signalled" && number(a) && number(b)) {
    event.kind = TaskInitEvent::Kind::kSignalled;
    event.signal = static_cast<int>(a);
    event.count = static_cast<int>(b);
    while (!line.empty()) {
      const std::string_view entry = word();
      const size_t colon = entry.rfind(':');
      if (colon == std::string_view::npos) return std::nullopt;
      event.names.push_back(std::string(entry.substr(0, colon)) + " (pid " +
                            std::string(entry.substr(colon + 1)) + ")");
    }
  } else if (kind == "limited") {
    event.kind = TaskInitEvent::Kind::kLimited;
    event.limit = std::string(word());
    if ((event.limit != "memory_max" && event.limit != "pids_max") || !number(a) || a <= 0) {
      return std::nullopt;
    }
    event.times = a;
  } else if (kind == "done" && line.empty()) {
    event.kind = TaskInitEvent::Kind::kDone;
  } else {
    return std::nullopt;
  }
  return event;
}

}  // namespace tether::agent
