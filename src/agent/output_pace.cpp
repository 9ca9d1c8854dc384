#include "agent/output_pace.hpp"

#include <algorithm>

namespace tether::agent {

OutputPace::OutputPace(uint64_t base_ms, uint64_t busy_ms)
    : base_ms_(base_ms), busy_ms_(std::max(base_ms, busy_ms)) {}

void OutputPace::roll(uint64_t now_ms) {
  if (now_ms < window_start_ms_ + kWindowMs) return;
  const uint64_t passed = (now_ms - window_start_ms_) / kWindowMs;
  for (uint64_t i = 0; i < std::min<uint64_t>(passed, 4); ++i) {
    counts_[3] = counts_[2];
    counts_[2] = counts_[1];
    counts_[1] = counts_[0];
    counts_[0] = 0;
  }
  window_start_ms_ += passed * kWindowMs;
}

void OutputPace::note_read(uint64_t now_ms) {
  roll(now_ms);
  ++counts_[0];
}

uint64_t OutputPace::reads_per_second(uint64_t now_ms) const {
  // The three finished windows and the current one so far: about the last
  // second.
  if (now_ms >= window_start_ms_ + 2 * kWindowMs) return 0;  // stale: nothing read lately
  const uint64_t reads = counts_[0] + counts_[1] + counts_[2] + counts_[3];
  const uint64_t span_ms = 3 * kWindowMs + std::max<uint64_t>(now_ms - window_start_ms_, 1);
  return reads * 1000 / span_ms;
}

uint64_t OutputPace::flush_interval_ms(uint64_t now_ms) const {
  const uint64_t rate = reads_per_second(now_ms);
  if (rate <= kQuietReadsPerSecond) return base_ms_;
  if (rate >= kBusyReadsPerSecond) return busy_ms_;
  const uint64_t span = kBusyReadsPerSecond - kQuietReadsPerSecond;
  return base_ms_ + (busy_ms_ - base_ms_) * (rate - kQuietReadsPerSecond) / span;
}

}  // namespace tether::agent
