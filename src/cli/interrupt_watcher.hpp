// InterruptWatcher: Ctrl-C and SIGTERM for the CLI, taken by a thread of its
// own so an interrupt can stop a blocked HTTP call cleanly (through the
// current HttpCallControl). A second interrupt exits at once with 130.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
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
  // What Ctrl-C does, from any thread (the live board's "q"): sets
  // interrupted() and stops the current HTTP call; if interrupted() was
  // already set, runs the exit hook and exits at once with 130.
  void interrupt();
  // Run before that immediate exit, on the thread that exits (the live
  // board gives the terminal back); nullptr for none. Setting it waits
  // while the hook runs.
  void set_before_exit(std::function<void()> hook);

 private:
  std::atomic<bool> interrupted_{false};
  std::atomic<core::HttpCallControl*> control_{nullptr};
  std::vector<std::unique_ptr<core::HttpCallControl>> owned_;
  std::mutex hook_mutex_;
  std::function<void()> before_exit_;
  std::thread thread_;
};

}  // namespace tether::cli
