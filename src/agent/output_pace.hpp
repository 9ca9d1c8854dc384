// OutputPace: how long an OutputChunker may hold output, from how busy the
// whole agent is. One per agent, shared by every stream's chunker.
//
// Why: each frame costs the same whatever it carries (a JSON frame, outbox
// rows and index entries, a WebSocket message, an ack, the deletes). 200
// tasks writing a line every 10 ms made 20,000 one-line frames a second and
// the agent fell seconds behind (issue [6/8]); holding each chatty stream's
// bytes ~25 ms makes frames of a few lines instead. A quiet agent keeps the
// short interval: a lone line, or one task's 100 lines a second, goes out
// within flush_interval_ms as before.
//
// Rule: the interval grows with the rate of pipe reads over the last
// second: base_ms below kQuietReadsPerSecond, busy_ms from
// kBusyReadsPerSecond, linear between. Times are the caller's monotonic
// milliseconds (no clock inside, as the chunker).
#pragma once

#include <cstdint>

namespace tether::agent {

class OutputPace {
 public:
  static constexpr uint64_t kQuietReadsPerSecond = 1'000;
  static constexpr uint64_t kBusyReadsPerSecond = 5'000;

  // base_ms <= busy_ms (agent.conf flush_interval_ms, flush_interval_busy_ms).
  OutputPace(uint64_t base_ms, uint64_t busy_ms);

  // One read of some stream's pipe delivered at `now_ms`.
  void note_read(uint64_t now_ms);
  // How long bytes may wait before they are framed, at `now_ms`.
  uint64_t flush_interval_ms(uint64_t now_ms) const;
  // Reads a second, over the last full window (about a second).
  uint64_t reads_per_second(uint64_t now_ms) const;

 private:
  static constexpr uint64_t kWindowMs = 250;  // the rate is four windows' reads

  void roll(uint64_t now_ms);

  uint64_t base_ms_;
  uint64_t busy_ms_;
  uint64_t window_start_ms_ = 0;
  uint64_t counts_[4] = {0, 0, 0, 0};  // reads per window, [0] the current one
};

}  // namespace tether::agent
