#include "core/proc_info.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

namespace tether::core {

namespace {

// A whole small /proc file, or nothing. Plain read(2): a process that ends
// between the open and the read makes read fail with ESRCH, which is an
// answer ("no such process"), not an exception. (std::ifstream with
// istreambuf_iterator throws ios_base::failure there, and that once
// unwound an attempt's coroutine while its task-init reader ran.)
std::optional<std::string> read_proc_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string content;
  char buffer[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      content.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    ::close(fd);
    if (n < 0) return std::nullopt;
    return content;
  }
}

}  // namespace

std::optional<uint64_t> process_start_ticks(int pid) {
  auto content = read_proc_file("/proc/" + std::to_string(pid) + "/stat");
  if (!content) return std::nullopt;
  // The command name (field 2) may contain spaces and parentheses; fields
  // after it start after the last ')'.
  const size_t close = content->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // Field 3 is the first after ") "; the start time is field 22.
  size_t at = close + 1;
  for (int field = 3; field <= 22; ++field) {
    while (at < content->size() && (*content)[at] == ' ')
      ++at;
    const size_t end = content->find(' ', at);
    if (at >= content->size()) return std::nullopt;
    if (field == 22) {
      const char* first = content->data() + at;
      const char* last = content->data() + (end == std::string::npos ? content->size() : end);
      uint64_t ticks = 0;
      const auto [stop, error] = std::from_chars(first, last, ticks);
      if (error != std::errc() || stop != last) return std::nullopt;
      return ticks;
    }
    if (end == std::string::npos) return std::nullopt;
    at = end;
  }
  return std::nullopt;
}

std::string boot_id() {
  auto content = read_proc_file("/proc/sys/kernel/random/boot_id");
  if (!content) return {};
  const size_t newline = content->find('\n');
  return newline == std::string::npos ? *content : content->substr(0, newline);
}

}  // namespace tether::core
