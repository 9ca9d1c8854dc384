// OutboxSink: an attempt's reports go into the outbox, to be sent from there.
#pragma once

#include "agent/attempt_sink.hpp"
#include "agent/outbox.hpp"

namespace tether::agent {

class OutboxSink final : public AttemptSink {
 public:
  OutboxSink(Outbox& outbox, protocol::AttemptRef attempt, size_t chunk_bytes)
      : outbox_(outbox), attempt_(std::move(attempt)), chunk_bytes_(chunk_bytes) {}

  void on_started(const protocol::StartedReport& started, int process_group) override;
  void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256& stream_digest) override;
  bool accepting_output() const override;
  core::Notification* room() override { return &outbox_.budget().room(); }

 private:
  Outbox& outbox_;
  protocol::AttemptRef attempt_;
  size_t chunk_bytes_;
  mutable bool blocked_ = false;  // for logging the start and end of a stall
  mutable bool disk_blocked_ = false;
};

}  // namespace tether::agent
