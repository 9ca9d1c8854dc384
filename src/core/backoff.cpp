#include "core/backoff.hpp"

#include <algorithm>
#include <random>

namespace tether::core {

uint64_t Backoff::next_delay_ms() {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  const uint64_t delay =
      std::uniform_int_distribution<uint64_t>(ceiling_ms_ / 2, ceiling_ms_)(random);
  ceiling_ms_ = std::min(ceiling_ms_ * 2, longest_ms_);
  return delay;
}

}  // namespace tether::core
