// BusyRetries: work to run again shortly because hub.db was locked by
// another process (SqlStore::Outcome::kBusy): an HTTP request, a dispatch
// to a parked poll. All of it runs on one timer, in the order it came.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "core/loop.hpp"
#include "core/timer.hpp"

namespace tether::hub {

class BusyRetries {
 public:
  // `delay_ms`: how long after the first pending retry they all run.
  BusyRetries(core::Loop& loop, uint64_t delay_ms) : timer_(loop), delay_ms_(delay_ms) {}
  BusyRetries(const BusyRetries&) = delete;
  BusyRetries& operator=(const BusyRetries&) = delete;

  void later(std::function<void()> work) {
    pending_.push_back(std::move(work));
    if (!timer_.active()) timer_.start(delay_ms_, [this] { run(); });
  }
  size_t pending() const { return pending_.size(); }
  void stop() {
    timer_.stop();
    pending_.clear();
  }

 private:
  void run() {
    auto due = std::move(pending_);
    pending_.clear();
    for (auto& work : due)
      work();
  }

  core::Timer timer_;
  uint64_t delay_ms_;
  std::deque<std::function<void()>> pending_;
};

}  // namespace tether::hub
