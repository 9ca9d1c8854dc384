// Time on the loop: a one-shot cancellable sleep for coroutines, and a
// reusable callback Timer for state machines that re-arm often (the output
// chunker's flush deadline), where opening a handle per wait would be waste.
#pragma once

#include <uv.h>

#include <coroutine>
#include <cstdint>
#include <functional>
#include <optional>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/uv_handle.hpp"

namespace tether::core {

// co_await sleep_for(loop, ms, token): Ok after `ms`, or kCancelled if the
// token fires first. The timer handle is closed before the awaiter resumes.
class SleepAwaiter {
 public:
  SleepAwaiter(Loop& loop, uint64_t milliseconds, CancellationToken token);
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;

  bool await_ready() const noexcept { return token_.cancelled(); }
  void await_suspend(std::coroutine_handle<> awaiting);
  Result<void> await_resume();

 private:
  static void on_fired(uv_timer_t* timer);
  static void on_closed(void* self);
  void finish(bool elapsed);

  Loop& loop_;
  uint64_t milliseconds_;
  CancellationToken token_;
  UvHandle<uv_timer_t> timer_;
  std::coroutine_handle<> awaiting_;
  std::optional<CancellationRegistration> registration_;
  bool finishing_ = false;
  bool elapsed_ = false;
};

inline SleepAwaiter sleep_for(Loop& loop, uint64_t milliseconds,
                              CancellationToken token = CancellationToken()) {
  return SleepAwaiter(loop, milliseconds, std::move(token));
}

// co_await until_cancelled(loop, token): resumes (on a later loop turn) once the
// token fires. It holds no handle, so something else must keep the loop alive.
class CancelledAwaiter {
 public:
  CancelledAwaiter(Loop& loop, CancellationToken token) : loop_(loop), token_(std::move(token)) {}
  CancelledAwaiter(const CancelledAwaiter&) = delete;
  CancelledAwaiter& operator=(const CancelledAwaiter&) = delete;

  bool await_ready() const noexcept { return token_.cancelled(); }
  void await_suspend(std::coroutine_handle<> awaiting) {
    registration_.emplace(token_,
                          [this, awaiting] { loop_.defer([awaiting] { awaiting.resume(); }); });
  }
  void await_resume() { registration_.reset(); }

 private:
  Loop& loop_;
  CancellationToken token_;
  std::optional<CancellationRegistration> registration_;
};

inline CancelledAwaiter until_cancelled(Loop& loop, CancellationToken token) {
  return CancelledAwaiter(loop, std::move(token));
}

// A reusable timer that calls back on the loop thread. start() re-arms it.
class Timer {
 public:
  explicit Timer(Loop& loop);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void start(uint64_t milliseconds, std::function<void()> callback);
  void stop();
  bool active() const;

 private:
  static void on_fired(uv_timer_t* timer);

  UvHandle<uv_timer_t> handle_;
  std::function<void()> callback_;
};

}  // namespace tether::core
