// Notification: coroutines wait until someone calls notify_all(), or until
// a timeout. Waiters resume on a later loop turn, never inside notify_all().
// Typical use: wait for "there is room in the outbox" or "a log line came".
#pragma once

#include <coroutine>
#include <cstdint>
#include <list>
#include <optional>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/timer.hpp"

namespace tether::core {

class Notification {
 public:
  explicit Notification(Loop& loop) : loop_(loop) {}
  Notification(const Notification&) = delete;
  Notification& operator=(const Notification&) = delete;

  void notify_all();

  class WaitAwaiter {
   public:
    WaitAwaiter(Notification& notification, uint64_t timeout_ms, CancellationToken token)
        : notification_(notification), timeout_ms_(timeout_ms), token_(std::move(token)) {}
    WaitAwaiter(const WaitAwaiter&) = delete;
    WaitAwaiter& operator=(const WaitAwaiter&) = delete;
    bool await_ready() const noexcept { return token_.cancelled(); }
    void await_suspend(std::coroutine_handle<> awaiting);
    // True if notified, false if the timeout passed or the token fired first.
    bool await_resume() const noexcept { return notified_; }

   private:
    friend class Notification;
    void wake(bool notified);

    Notification& notification_;
    uint64_t timeout_ms_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
    std::coroutine_handle<> awaiting_;
    std::optional<std::list<WaitAwaiter*>::iterator> position_;
    std::optional<Timer> timer_;
    bool notified_ = false;
  };

  // timeout_ms 0: wait without a timeout.
  WaitAwaiter wait(uint64_t timeout_ms = 0, CancellationToken token = CancellationToken()) {
    return WaitAwaiter(*this, timeout_ms, std::move(token));
  }

 private:
  Loop& loop_;
  std::list<WaitAwaiter*> waiters_;
};

}  // namespace tether::core
