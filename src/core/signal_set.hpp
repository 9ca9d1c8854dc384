// SignalSet: waits for process signals (SIGTERM, SIGINT, ...) from coroutines.
//
// The handles stay installed for the life of the set, so a signal that
// arrives while nobody is waiting is counted, not lost, and never falls back
// to the default action (which would kill the process mid-write).
#pragma once

#include <uv.h>

#include <coroutine>
#include <deque>
#include <initializer_list>
#include <optional>
#include <vector>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/uv_handle.hpp"

namespace tether::core {

class SignalSet {
 public:
  SignalSet(Loop& loop, std::initializer_list<int> signals);
  SignalSet(const SignalSet&) = delete;
  SignalSet& operator=(const SignalSet&) = delete;

  class NextAwaiter {
   public:
    NextAwaiter(SignalSet& set, CancellationToken token) : set_(set), token_(std::move(token)) {}
    NextAwaiter(const NextAwaiter&) = delete;
    NextAwaiter& operator=(const NextAwaiter&) = delete;
    bool await_ready() const noexcept { return !set_.arrived_.empty() || token_.cancelled(); }
    void await_suspend(std::coroutine_handle<> awaiting);
    Result<int> await_resume();

   private:
    SignalSet& set_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
  };

  // The next signal received (oldest first), or kCancelled.
  NextAwaiter next(CancellationToken token = CancellationToken()) {
    return NextAwaiter(*this, std::move(token));
  }

 private:
  static void on_signal(uv_signal_t* handle, int signum);
  void set_referenced(bool referenced);

  Loop& loop_;
  std::vector<UvHandle<uv_signal_t>> handles_;
  std::deque<int> arrived_;
  std::coroutine_handle<> waiter_;
};

}  // namespace tether::core
