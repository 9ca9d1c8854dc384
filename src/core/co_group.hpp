// CoGroup: start several coroutines now and wait until all have finished.
//
// Structured concurrency: the owner of a group must co_await join() before the
// group is destroyed. Children report failures through their own results (or
// captured state); an exception escaping a child is a bug and terminates.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <utility>

#include "core/co.hpp"
#include "core/crash_report.hpp"

namespace tether::core {

class CoGroup {
 public:
  CoGroup() = default;
  CoGroup(const CoGroup&) = delete;
  CoGroup& operator=(const CoGroup&) = delete;
  ~CoGroup() {
    if (pending_ != 0) {  // destroyed while children still run: a bug
      note_terminate_reason(
          std::uncaught_exceptions() > 0
              ? "a CoGroup was destroyed while its children were running, by an exception "
                "unwinding the coroutine that owned it"
              : "a CoGroup was destroyed while its children were running");
      std::terminate();
    }
  }

  // Starts `task` at once; it runs until its first suspension before spawn returns.
  void spawn(Co<void> task) {
    ++pending_;
    run_child(this, std::move(task));
  }

  size_t pending() const { return pending_; }

  class JoinAwaiter {
   public:
    explicit JoinAwaiter(CoGroup& group) noexcept : group_(group) {}
    bool await_ready() const noexcept { return group_.pending_ == 0; }
    void await_suspend(std::coroutine_handle<> awaiting) noexcept { group_.joiner_ = awaiting; }
    void await_resume() const noexcept {}

   private:
    CoGroup& group_;
  };

  // Completes when every task spawned so far (and any spawned meanwhile) is done.
  JoinAwaiter join() { return JoinAwaiter(*this); }

 private:
  static DetachedCoroutine run_child(CoGroup* group, Co<void> task) {
    co_await std::move(task);
    group->child_finished();  // must be the last use of `group`: the joiner may free it
  }

  void child_finished() {
    if (--pending_ == 0 && joiner_) std::exchange(joiner_, {}).resume();
  }

  size_t pending_ = 0;
  std::coroutine_handle<> joiner_;
};

}  // namespace tether::core
