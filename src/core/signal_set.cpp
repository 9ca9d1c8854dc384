#include "core/signal_set.hpp"

#include <utility>

namespace tether::core {

SignalSet::SignalSet(Loop& loop, std::initializer_list<int> signals) : loop_(loop) {
  for (int signum : signals) {
    UvHandle<uv_signal_t> handle;
    uv_signal_init(loop.get(), handle.get());
    handle.mark_initialized();
    handle.get()->data = this;
    uv_signal_start(handle.get(), &SignalSet::on_signal, signum);
    handles_.push_back(std::move(handle));
  }
  // Listening alone must not keep the loop alive; a waiting coroutine does.
  set_referenced(false);
}

void SignalSet::set_referenced(bool referenced) {
  for (auto& handle : handles_) {
    if (referenced) {
      uv_ref(handle.base());
    } else {
      uv_unref(handle.base());
    }
  }
}

void SignalSet::on_signal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<SignalSet*>(handle->data);
  self->arrived_.push_back(signum);
  if (self->waiter_) {
    self->set_referenced(false);
    std::exchange(self->waiter_, {}).resume();
  }
}

void SignalSet::NextAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  set_.waiter_ = awaiting;
  set_.set_referenced(true);
  registration_.emplace(token_, [this] {
    auto waiter = std::exchange(set_.waiter_, {});
    if (!waiter) return;
    set_.set_referenced(false);
    set_.loop_.defer([waiter] { waiter.resume(); });
  });
}

Result<int> SignalSet::NextAwaiter::await_resume() {
  registration_.reset();
  if (!set_.arrived_.empty()) {
    int signum = set_.arrived_.front();
    set_.arrived_.pop_front();
    return signum;
  }
  return cancelled_error();
}

}  // namespace tether::core
