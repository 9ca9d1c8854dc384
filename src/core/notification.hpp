// Notification: coroutines wait until someone calls notify_all(), or until
// a timeout. Waiters resume on a later loop turn, never inside notify_all().
// Typical use: wait for "there is room in the outbox" or "a log line came".
#pragma once

#include <coroutine>
#include <cstdint>
#include <list>
#include <optional>

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
    WaitAwaiter(Notification& notification, uint64_t timeout_ms)
        : notification_(notification), timeout_ms_(timeout_ms) {}
    WaitAwaiter(const WaitAwaiter&) = delete;
    WaitAwaiter& operator=(const WaitAwaiter&) = delete;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> awaiting);
    // True if notified, false if the timeout passed first.
    bool await_resume() const noexcept { return notified_; }

   private:
    friend class Notification;
    void wake(bool notified);

    Notification& notification_;
    uint64_t timeout_ms_;
    std::coroutine_handle<> awaiting_;
    std::optional<std::list<WaitAwaiter*>::iterator> position_;
    std::optional<Timer> timer_;
    bool notified_ = false;
  };

  // timeout_ms 0: wait without a timeout.
  WaitAwaiter wait(uint64_t timeout_ms = 0) { return WaitAwaiter(*this, timeout_ms); }

 private:
  Loop& loop_;
  std::list<WaitAwaiter*> waiters_;
};

}  // namespace tether::core
