// Drives a Task to completion on a Loop: the bridge from main() (or a test)
// into coroutine code.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <utility>

#include "core/co.hpp"
#include "core/loop.hpp"

namespace tether::core {

namespace detail {
template <class T>
Co<void> store_result(Co<T> task, std::optional<T>& out, std::exception_ptr& failure) {
  try {
    out.emplace(co_await std::move(task));
  } catch (...) {
    failure = std::current_exception();
  }
}
inline Co<void> mark_done(Co<void> task, bool& done, std::exception_ptr& failure) {
  try {
    co_await std::move(task);
    done = true;
  } catch (...) {
    failure = std::current_exception();
  }
}
}  // namespace detail

// Runs the loop until `task` has finished and every handle it opened is closed.
// An exception from the task is rethrown here, once the loop has stopped.
// Throws std::logic_error if the loop runs dry first: the task waits for
// something nothing will ever deliver.
template <class T>
T run_to_completion(Loop& loop, Co<T> task) {
  std::optional<T> result;
  std::exception_ptr failure;
  start_detached(detail::store_result(std::move(task), result, failure));
  loop.run();
  if (failure) std::rethrow_exception(failure);
  if (!result) throw std::logic_error("run_to_completion: loop ran dry before the task finished");
  return std::move(*result);
}

inline void run_to_completion(Loop& loop, Co<void> task) {
  bool done = false;
  std::exception_ptr failure;
  start_detached(detail::mark_done(std::move(task), done, failure));
  loop.run();
  if (failure) std::rethrow_exception(failure);
  if (!done) throw std::logic_error("run_to_completion: loop ran dry before the task finished");
}

}  // namespace tether::core
