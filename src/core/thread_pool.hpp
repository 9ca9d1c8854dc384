// ThreadPool: a fixed set of threads for blocking work (HTTP requests, file
// syncs), sized by its owner. We do not use libuv's shared pool: its default
// four threads starve when several long polls sit in it at once.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tether::core {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // Lets running jobs finish, drops queued ones, joins the threads. A Loop that
  // jobs post to must outlive its pool.
  ~ThreadPool();

  void submit(std::function<void()> job);

 private:
  void worker();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tether::core
