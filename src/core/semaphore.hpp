// AsyncSemaphore: at most N holders at once; the rest wait in FIFO order.
//
// A released permit is handed to the oldest waiter directly (it cannot be
// stolen by a later acquire), and the waiter resumes on a later loop turn, not
// inside release().
#pragma once

#include <coroutine>
#include <cstddef>
#include <list>
#include <optional>

#include "core/cancellation.hpp"
#include "core/loop.hpp"
#include "core/result.hpp"

namespace tether::core {

class AsyncSemaphore {
 public:
  AsyncSemaphore(Loop& loop, size_t permits) : loop_(loop), available_(permits) {}
  AsyncSemaphore(const AsyncSemaphore&) = delete;
  AsyncSemaphore& operator=(const AsyncSemaphore&) = delete;

  class AcquireAwaiter {
   public:
    AcquireAwaiter(AsyncSemaphore& semaphore, CancellationToken token)
        : semaphore_(semaphore), token_(std::move(token)) {}
    AcquireAwaiter(const AcquireAwaiter&) = delete;
    AcquireAwaiter& operator=(const AcquireAwaiter&) = delete;

    bool await_ready() {
      if (token_.cancelled()) return true;
      if (semaphore_.available_ > 0 && semaphore_.waiters_.empty()) {
        --semaphore_.available_;
        granted_ = true;
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> awaiting) {
      awaiting_ = awaiting;
      position_ = semaphore_.waiters_.insert(semaphore_.waiters_.end(), this);
      registration_.emplace(token_, [this] {
        if (granted_) return;
        semaphore_.waiters_.erase(*position_);
        position_.reset();
        semaphore_.loop_.defer([awaiting = awaiting_] { awaiting.resume(); });
      });
    }
    Result<void> await_resume() {
      registration_.reset();
      if (!granted_) return cancelled_error();
      return {};
    }

   private:
    friend class AsyncSemaphore;
    AsyncSemaphore& semaphore_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
    std::optional<std::list<AcquireAwaiter*>::iterator> position_;
    std::coroutine_handle<> awaiting_;
    bool granted_ = false;
  };

  // Ok once a permit is held (give it back with release()), or kCancelled.
  AcquireAwaiter acquire(CancellationToken token = CancellationToken()) {
    return AcquireAwaiter(*this, std::move(token));
  }

  void release() {
    if (waiters_.empty()) {
      ++available_;
      return;
    }
    AcquireAwaiter* next = waiters_.front();
    waiters_.pop_front();
    next->position_.reset();
    next->granted_ = true;
    loop_.defer([awaiting = next->awaiting_] { awaiting.resume(); });
  }

  size_t available() const { return available_; }
  size_t waiting() const { return waiters_.size(); }

 private:
  Loop& loop_;
  size_t available_;
  std::list<AcquireAwaiter*> waiters_;
};

}  // namespace tether::core
