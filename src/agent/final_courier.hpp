// FinalCourier: the HTTP fallback for finals (docs/protocol.md 7).
//
// A final that the channel has not gotten acked within 10 s, or that sits in
// the outbox while the channel is down, is PUT over HTTP. The answer decides:
//   200               acked: the final leaves the outbox
//   409               output incomplete: keep it; the channel replays the
//                     output, and the final is tried again later
//   404, 410, 422     the hub will never take it (unknown, discarded,
//                     conflicting): drop it, and say why in the log
//   anything else     retry with capped exponential backoff (1 s to 60 s),
//                     honouring Retry-After: a final is never abandoned
#pragma once

#include "core/backoff.hpp"

#include <cstdint>
#include <map>
#include <string>

#include "agent/hub_endpoint.hpp"
#include "agent/outbox.hpp"
#include "agent/result_channel.hpp"
#include "core/thread_pool.hpp"

namespace tether::agent {

struct CourierOptions {
  HubEndpoint hub;
  uint64_t channel_patience_ms = 10'000;
};

class FinalCourier {
 public:
  FinalCourier(core::Loop& loop, core::ThreadPool& pool, Outbox& outbox, ResultChannel& channel,
               CourierOptions options)
      : loop_(loop),
        pool_(pool),
        outbox_(outbox),
        channel_(channel),
        options_(std::move(options)) {}

  core::Co<void> run(core::CancellationToken stop);
  uint64_t deliveries() const { return deliveries_; }

 private:
  struct Attempts {
    uint64_t next_try_ms = 0;
    core::Backoff backoff{1000, 60'000};
  };
  core::Co<void> deliver(const StoredFrame& final_frame, Attempts& state,
                         core::CancellationToken stop);

  core::Loop& loop_;
  core::ThreadPool& pool_;
  Outbox& outbox_;
  ResultChannel& channel_;
  CourierOptions options_;
  std::map<std::string, Attempts> states_;
  uint64_t deliveries_ = 0;
};

}  // namespace tether::agent
