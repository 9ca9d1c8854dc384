// Co<T>: a lazily started coroutine that yields one T (or nothing, Co<void>).
//
// Named Co, not Task: a "task" in Tether is a command a hub sends to an
// agent. Awaiting a Co starts it and suspends the awaiter; when the
// coroutine finishes, its final_suspend hands control straight back to the
// awaiter (symmetric transfer), so long chains of co_await never grow the
// native stack.
//
// A Co is owned by whoever holds it. Destroying a Co that has started but
// not finished is a programmer error: every coroutine is awaited or handed to
// a CoGroup / start_detached, which keeps it alive until completion.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "core/crash_report.hpp"

namespace tether::core {

namespace detail {

struct CoPromiseBase {
  std::coroutine_handle<> continuation = std::noop_coroutine();
  std::exception_ptr exception;

  struct FinalAwaiter {
    FinalAwaiter() noexcept = default;
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      return self.promise().continuation;
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return FinalAwaiter(); }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};

// Where the result goes: a value, or nothing for Co<void>.
template <class T>
struct CoResult : CoPromiseBase {
  std::optional<T> value;
  template <class U>
  void return_value(U&& result) {
    value.emplace(std::forward<U>(result));
  }
  T take() { return std::move(*value); }
};

template <>
struct CoResult<void> : CoPromiseBase {
  void return_void() noexcept {}
  void take() noexcept {}
};

}  // namespace detail

template <class T = void>
class [[nodiscard]] Co {
 public:
  struct promise_type : detail::CoResult<T> {
    Co get_return_object() noexcept {
      return Co(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };
  using Handle = std::coroutine_handle<promise_type>;

  class Awaiter {
   public:
    explicit Awaiter(Handle handle) noexcept : handle_(handle) {}
    bool await_ready() const noexcept { return handle_.done(); }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
      handle_.promise().continuation = awaiting;
      return handle_;
    }
    T await_resume() {
      auto& promise = handle_.promise();
      if (promise.exception) std::rethrow_exception(promise.exception);
      return promise.take();
    }

   private:
    Handle handle_;
  };

  Co() noexcept = default;
  explicit Co(Handle handle) noexcept : handle_(handle) {}
  Co(Co&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Co& operator=(Co&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Co(const Co&) = delete;
  Co& operator=(const Co&) = delete;
  ~Co() { reset(); }

  Awaiter operator co_await() && noexcept { return Awaiter(handle_); }
  Awaiter operator co_await() & noexcept { return Awaiter(handle_); }

  bool valid() const noexcept { return static_cast<bool>(handle_); }
  bool done() const noexcept { return handle_ && handle_.done(); }

 private:
  void reset() noexcept {
    if (handle_) handle_.destroy();
    handle_ = {};
  }
  Handle handle_;
};

// A coroutine that starts at once and frees itself when it finishes. It is the
// bottom of every chain of awaits; an exception escaping it is a bug, so it
// terminates rather than vanishing.
struct DetachedCoroutine {
  struct promise_type {
    DetachedCoroutine get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    [[noreturn]] void unhandled_exception() const noexcept {
      note_terminate_reason("an exception escaped a detached coroutine");
      std::terminate();
    }
  };
};

namespace detail {
inline DetachedCoroutine run_detached(Co<void> co) {
  co_await std::move(co);
}
}  // namespace detail

// Starts `co` now; it runs until its first suspension before this returns.
// Use only for work whose lifetime is bounded by something else (the loop, a
// CoGroup); prefer CoGroup where someone must wait for the result.
inline void start_detached(Co<void> co) {
  detail::run_detached(std::move(co));
}

}  // namespace tether::core
