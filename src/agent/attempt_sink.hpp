// Where a running attempt's reports go: `tether-agent exec` prints them, the
// agent's outbox stores them before sending.
#pragma once

#include "core/notification.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/sha256.hpp"

namespace tether::agent {

class AttemptSink {
 public:
  virtual ~AttemptSink() = default;
  // `process_group`: the group that holds every process of the attempt
  // (its init's), for killing what a crash left behind.
  virtual void on_started(const protocol::StartedReport& started, int process_group) = 0;
  // Chunks of one stream arrive in seq order; the two streams interleave.
  // `stream_digest` is the stream's running SHA-256 including this chunk.
  virtual void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& stream_digest) = 0;

  // Backpressure: while this is false the attempt stops reading its pipes
  // (the process blocks on a full pipe) until room() is notified.
  virtual bool accepting_output() const { return true; }
  virtual core::Notification* room() { return nullptr; }
};

}  // namespace tether::agent
