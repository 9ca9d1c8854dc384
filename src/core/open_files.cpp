#include "core/open_files.hpp"

#include <sys/resource.h>

#include <algorithm>

namespace tether::core {

size_t default_max_connections() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 768;
  const uint64_t soft = limit.rlim_cur == RLIM_INFINITY ? 1u << 20 : limit.rlim_cur;
  const uint64_t reserve = std::min<uint64_t>(256, soft / 4);
  return static_cast<size_t>(std::max<uint64_t>(1, soft - reserve));
}

std::pair<uint64_t, uint64_t> raise_open_files_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return {0, 0};
  const uint64_t before = limit.rlim_cur;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_max != RLIM_INFINITY &&
      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return {before, before};
  }
  return {before, limit.rlim_cur};
}

}  // namespace tether::core
