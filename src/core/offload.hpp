// co_await run_off_loop(loop, pool, work, token): runs `work` on a pool thread
// and resumes the awaiting coroutine on the loop thread with its result.
//
// Cancellation reaches the await in both phases: a job still queued never
// runs; a job already running is abandoned (its result is discarded when it
// ends), so a blocked call cannot hold up shutdown. `work` must therefore own
// everything it touches; it must not point into the awaiting coroutine.
#pragma once

#include <atomic>
#include <coroutine>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/thread_pool.hpp"

namespace tether::core {

template <class T>
class OffloadAwaiter {
 public:
  OffloadAwaiter(Loop& loop, ThreadPool& pool, std::function<Result<T>()> work,
                 CancellationToken token)
      : loop_(loop), pool_(pool), token_(std::move(token)), state_(std::make_shared<State>()) {
    state_->work = std::move(work);
  }
  OffloadAwaiter(const OffloadAwaiter&) = delete;
  OffloadAwaiter& operator=(const OffloadAwaiter&) = delete;

  bool await_ready() const noexcept { return token_.cancelled(); }

  void await_suspend(std::coroutine_handle<> awaiting) {
    keep_alive_.emplace(loop_);
    state_->awaiting = awaiting;
    Loop* loop = &loop_;
    pool_.submit([state = state_, loop] {
      int expected = kQueued;
      if (!state->phase.compare_exchange_strong(expected, kRunning)) return;  // abandoned
      state->result.emplace(state->work());
      expected = kRunning;
      if (!state->phase.compare_exchange_strong(expected, kFinished)) return;  // abandoned
      loop->post([state] { state->awaiting.resume(); });
    });
    registration_.emplace(token_, [this] {
      int queued = kQueued;
      int running = kRunning;
      if (state_->phase.compare_exchange_strong(queued, kAbandoned) ||
          state_->phase.compare_exchange_strong(running, kAbandoned)) {
        auto awaiting = state_->awaiting;
        loop_.defer([awaiting] { awaiting.resume(); });
      }
    });
  }

  Result<T> await_resume() {
    registration_.reset();
    keep_alive_.reset();
    if (state_->phase.load() != kFinished) return cancelled_error();
    return std::move(*state_->result);
  }

 private:
  enum Phase : int { kQueued, kRunning, kFinished, kAbandoned };
  struct State {
    std::function<Result<T>()> work;
    std::optional<Result<T>> result;
    std::atomic<int> phase{kQueued};
    std::coroutine_handle<> awaiting;
  };

  Loop& loop_;
  ThreadPool& pool_;
  CancellationToken token_;
  std::shared_ptr<State> state_;
  std::optional<Loop::KeepAlive> keep_alive_;
  std::optional<CancellationRegistration> registration_;
};

template <class T>
OffloadAwaiter<T> run_off_loop(Loop& loop, ThreadPool& pool, std::function<Result<T>()> work,
                               CancellationToken token = CancellationToken()) {
  return OffloadAwaiter<T>(loop, pool, std::move(work), std::move(token));
}

}  // namespace tether::core
