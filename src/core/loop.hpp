// Loop: the libuv event loop every coroutine of a process runs on.
//
// One thread runs the loop; all coroutine code runs on that thread. Other
// threads talk to it only through post(), which wakes the loop with a
// uv_async_t. Work that must not run inline (a resume requested from inside a
// library callback or a cancel() call) goes through defer().
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/uv_handle.hpp"

namespace tether::core {

class Loop {
 public:
  Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  // Runs pending close callbacks, then closes the loop. Handles still open at
  // this point are reported on stderr: they are leaks.
  ~Loop();

  uv_loop_t* get() { return &loop_; }

  // Runs until no referenced handle or request is left.
  void run();

  // Loop time in milliseconds (cached per iteration; see uv_now).
  uint64_t now_ms() const { return uv_now(&loop_); }
  // Refreshes the cached loop time; use before measuring a short interval.
  void update_time() { uv_update_time(&loop_); }

  // From any thread: runs `fn` on the loop thread soon. The caller must hold a
  // KeepAlive while a post is outstanding, or the loop may exit first.
  void post(std::function<void()> fn);

  // On the loop thread: runs `fn` on a later loop iteration, never inline.
  void defer(std::function<void()> fn);

  // While any KeepAlive exists the loop does not run out of work. Loop thread only.
  class KeepAlive {
   public:
    explicit KeepAlive(Loop& loop) : loop_(&loop) { loop_->acquire(); }
    KeepAlive(KeepAlive&& other) noexcept : loop_(std::exchange(other.loop_, nullptr)) {}
    KeepAlive(const KeepAlive&) = delete;
    KeepAlive& operator=(const KeepAlive&) = delete;
    KeepAlive& operator=(KeepAlive&&) = delete;
    ~KeepAlive() {
      if (loop_) loop_->release();
    }

   private:
    Loop* loop_;
  };

  bool on_loop_thread() const { return std::this_thread::get_id() == thread_; }

 private:
  void acquire();
  void release();
  static void on_async(uv_async_t* async);
  void drain_posted();

  uv_loop_t loop_{};
  UvHandle<uv_async_t> async_;
  std::thread::id thread_;
  size_t keep_alive_count_ = 0;
  std::mutex mutex_;
  std::vector<std::function<void()>> posted_;
};

}  // namespace tether::core
