#include "core/notification.hpp"

namespace tether::core {

void Notification::notify_all() {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (WaitAwaiter* waiter : waiters) {
    waiter->position_.reset();
    waiter->wake(true);
  }
}

void Notification::WaitAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  awaiting_ = awaiting;
  position_ = notification_.waiters_.insert(notification_.waiters_.end(), this);
  auto give_up = [this] {
    if (!position_) return;  // already woken
    notification_.waiters_.erase(*position_);
    position_.reset();
    wake(false);
  };
  if (timeout_ms_ > 0) {
    timer_.emplace(notification_.loop_);
    timer_->start(timeout_ms_, give_up);
  }
  registration_.emplace(token_, give_up);
}

void Notification::WaitAwaiter::wake(bool notified) {
  notified_ = notified;
  if (timer_) timer_->stop();
  notification_.loop_.defer([awaiting = awaiting_] { awaiting.resume(); });
}

}  // namespace tether::core
