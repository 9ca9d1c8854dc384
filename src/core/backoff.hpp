// Backoff: capped exponential backoff with "equal jitter" (AWS Architecture
// Blog, "Exponential Backoff And Jitter", 2015): each wait is drawn
// uniformly from [ceiling/2, ceiling], and the ceiling doubles after each
// failure up to a cap. Half the ceiling keeps retries from hurrying; the
// random half spreads a fleet that failed at the same moment.
//
// Units are milliseconds. Not thread-safe (one per retry loop).
#pragma once

#include <cstdint>

namespace tether::core {

class Backoff {
 public:
  // first_ms <= longest_ms; both > 0.
  Backoff(uint64_t first_ms, uint64_t longest_ms)
      : first_ms_(first_ms), longest_ms_(longest_ms), ceiling_ms_(first_ms) {}

  // The wait before the next try, then the ceiling doubles (up to the cap).
  uint64_t next_delay_ms();
  // A try succeeded: the next failure waits about first_ms again.
  void reset() { ceiling_ms_ = first_ms_; }
  uint64_t ceiling_ms() const { return ceiling_ms_; }

 private:
  uint64_t first_ms_;
  uint64_t longest_ms_;
  uint64_t ceiling_ms_;
};

}  // namespace tether::core
