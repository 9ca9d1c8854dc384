// Task<T>: a lazily started coroutine that yields one T.
//
// Awaiting a Task starts it and suspends the awaiter; when the task finishes,
// its final_suspend hands control straight back to the awaiter (symmetric
// transfer), so long chains of co_await never grow the native stack.
//
// A Task is owned by whoever holds it. Destroying a Task that has started but
// not finished is a programmer error: every task is awaited or handed to a
// TaskGroup / start_detached, which keeps it alive until completion.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

#include "core/crash_report.hpp"

namespace tether::core {

namespace detail {

struct TaskPromiseBase {
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

}  // namespace detail

template <class T = void>
class [[nodiscard]] Task;

template <class T>
class [[nodiscard]] Task {
 public:
  struct promise_type : detail::TaskPromiseBase {
    std::optional<T> value;
    Task get_return_object() noexcept {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    template <class U>
    void return_value(U&& result) {
      value.emplace(std::forward<U>(result));
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
      return std::move(*promise.value);
    }

   private:
    Handle handle_;
  };

  Task() noexcept = default;
  explicit Task(Handle handle) noexcept : handle_(handle) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

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

template <>
class [[nodiscard]] Task<void> {
 public:
  struct promise_type : detail::TaskPromiseBase {
    Task get_return_object() noexcept {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    void return_void() noexcept {}
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
    void await_resume() {
      if (handle_.promise().exception) std::rethrow_exception(handle_.promise().exception);
    }

   private:
    Handle handle_;
  };

  Task() noexcept = default;
  explicit Task(Handle handle) noexcept : handle_(handle) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

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
inline DetachedCoroutine run_detached(Task<void> task) {
  co_await std::move(task);
}
}  // namespace detail

// Starts `task` now; it runs until its first suspension before this returns.
// Use only for work whose lifetime is bounded by something else (the loop, a
// TaskGroup); prefer TaskGroup where someone must wait for the result.
inline void start_detached(Task<void> task) {
  detail::run_detached(std::move(task));
}

}  // namespace tether::core
