// Poller: asks the hub for work (docs/protocol.md 3), only while a task slot
// is free.
//
// Errors back off exponentially with full jitter from 1 s to 60 s, and
// Retry-After is honoured. A refused token (401/403) is logged at most once
// a minute and backed off like any error: never hammered. hub.wake on the
// channel ends a wait at once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "agent/hub_endpoint.hpp"
#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/notification.hpp"
#include "core/thread_pool.hpp"
#include "core/url.hpp"
#include "protocol/frames.hpp"
#include "protocol/task_spec.hpp"

namespace tether::agent {

struct PollerOptions {
  HubEndpoint hub;
  std::string agent;
  uint64_t wait_s = 30;
  // This run of the agent (the hello carries it too): docs/protocol.md 3.
  std::string instance;
  // Where the token came from, for a refusal's log line.
  std::string token_source;
};

class Poller {
 public:
  // `has_slot` says whether a task could start now; `start` starts one;
  // `refuse` answers a dispatch that cannot be run (malformed: the reason)
  // with a rejected final.
  Poller(core::Loop& loop, core::ThreadPool& pool, PollerOptions options,
         std::function<bool()> has_slot, std::function<void(protocol::TaskSpec)> start,
         std::function<void(const protocol::AttemptRef&, const std::string&)> refuse = {});

  core::Co<void> run(core::CancellationToken stop);
  // A slot was freed, or the hub has work (hub.wake): poll now.
  void wake() { wake_.notify_all(); }
  // For status and metrics: when a poll last succeeded (UTC), why the last
  // one failed, and counts since start.
  const std::string& last_success() const { return last_success_; }
  const std::string& last_error() const { return last_error_; }
  uint64_t failures() const { return failures_; }
  uint64_t tasks_received() const { return tasks_received_; }

 private:
  // A 200 answer: start the task, or refuse one that cannot run.
  void take_task(const std::string& body);
  // A failed poll: counted and logged (an auth refusal once a minute).
  // Returns how long to wait: `pause_ms`, or the hub's Retry-After if longer.
  uint64_t note_failure(const Result<core::HttpReply>& reply, uint64_t pause_ms);
  core::Loop& loop_;
  core::ThreadPool& pool_;
  PollerOptions options_;
  std::function<bool()> has_slot_;
  std::function<void(protocol::TaskSpec)> start_;
  std::function<void(const protocol::AttemptRef&, const std::string&)> refuse_;
  core::Notification wake_;
  std::string last_success_;
  std::string last_error_;
  uint64_t failures_ = 0;
  uint64_t tasks_received_ = 0;
  int64_t last_auth_log_ms_ = -1'000'000;
};

}  // namespace tether::agent
