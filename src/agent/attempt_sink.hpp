// Where a running attempt's reports go: `tether-agent exec` prints them, the
// agent's outbox stores them before sending.
#pragma once

#include "protocol/attempt_report.hpp"

namespace tether::agent {

class AttemptSink {
 public:
  virtual ~AttemptSink() = default;
  virtual void on_started(const protocol::StartedReport& started) = 0;
  // Chunks of one stream arrive in seq order; the two streams interleave.
  virtual void on_output(protocol::OutputChunk&& chunk) = 0;
};

}  // namespace tether::agent
