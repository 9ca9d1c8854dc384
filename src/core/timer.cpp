#include "core/timer.hpp"

#include <utility>

namespace tether::core {

SleepAwaiter::SleepAwaiter(Loop& loop, uint64_t milliseconds, CancellationToken token)
    : loop_(loop), milliseconds_(milliseconds), token_(std::move(token)) {}

void SleepAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  awaiting_ = awaiting;
  uv_timer_init(loop_.get(), timer_.get());
  timer_.mark_initialized();
  timer_.get()->data = this;
  uv_timer_start(timer_.get(), &SleepAwaiter::on_fired, milliseconds_, 0);
  registration_.emplace(token_, [this] { finish(false); });
}

Result<void> SleepAwaiter::await_resume() {
  registration_.reset();
  if (token_.cancelled() && !elapsed_) return cancelled_error();
  return {};
}

void SleepAwaiter::on_fired(uv_timer_t* timer) {
  static_cast<SleepAwaiter*>(timer->data)->finish(true);
}

void SleepAwaiter::finish(bool elapsed) {
  if (finishing_) return;
  finishing_ = true;
  elapsed_ = elapsed;
  timer_.close(&SleepAwaiter::on_closed, this);
}

void SleepAwaiter::on_closed(void* self) {
  static_cast<SleepAwaiter*>(self)->awaiting_.resume();
}

Timer::Timer(Loop& loop) {
  uv_timer_init(loop.get(), handle_.get());
  handle_.mark_initialized();
  handle_.get()->data = this;
}

void Timer::start(uint64_t milliseconds, std::function<void()> callback) {
  callback_ = std::move(callback);
  uv_timer_start(handle_.get(), &Timer::on_fired, milliseconds, 0);
}

void Timer::stop() {
  uv_timer_stop(handle_.get());
}

bool Timer::active() const {
  return uv_is_active(handle_.base()) != 0;
}

void Timer::on_fired(uv_timer_t* timer) {
  auto* self = static_cast<Timer*>(timer->data);
  // The callback may re-arm (and so replace callback_) while it runs.
  auto callback = std::move(self->callback_);
  callback();
}

}  // namespace tether::core
