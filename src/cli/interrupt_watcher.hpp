// InterruptWatcher: Ctrl-C and SIGTERM for the CLI, taken by a thread of its
// own so an interrupt can stop a blocked HTTP call cleanly (through the
// current HttpCallControl). A second interrupt exits at once with 130.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "core/http_client.hpp"

namespace tether::cli {

inline constexpr int kExitInterrupted = 130;

// Ctrl-C and SIGTERM are taken by a thread of their own, so an interrupt can
// stop a blocked HTTP call cleanly. A second interrupt exits at once.
class InterruptWatcher {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread (and the threads it
  // starts later) and waits for them on a thread of its own.
  InterruptWatcher();
  const std::atomic<bool>& interrupted() const { return interrupted_; }
  void reset() { interrupted_ = false; }
  core::HttpCallControl& fresh_control() {
    owned_.push_back(std::make_unique<core::HttpCallControl>());
    control_ = owned_.back().get();
    return *owned_.back();
  }

 private:
  std::atomic<bool> interrupted_{false};
  std::atomic<core::HttpCallControl*> control_{nullptr};
  std::vector<std::unique_ptr<core::HttpCallControl>> owned_;
  std::thread thread_;
};

}  // namespace tether::cli
