#include "core/loop.hpp"

#include <cstdio>
#include <stdexcept>
#include <string>

namespace tether::core {

Loop::Loop() : thread_(std::this_thread::get_id()) {
  if (int rc = uv_loop_init(&loop_); rc != 0) {
    throw std::runtime_error(std::string("uv_loop_init: ") + uv_strerror(rc));
  }
  uv_async_init(&loop_, async_.get(), &Loop::on_async);
  async_.mark_initialized();
  async_.get()->data = this;
  // The wake-up handle alone must not keep the loop running; KeepAlive refs it.
  uv_unref(async_.base());
}

Loop::~Loop() {
  async_.close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop_) == UV_EBUSY) {
    uv_walk(
        &loop_,
        [](uv_handle_t* handle, void*) {
          std::fprintf(stderr, "tether: uv handle of type %s still open at loop close\n",
                       uv_handle_type_name(uv_handle_get_type(handle)));
        },
        nullptr);
  }
}

void Loop::run() {
  thread_ = std::this_thread::get_id();
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void Loop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    posted_.push_back(std::move(fn));
  }
  uv_async_send(async_.get());
}

void Loop::defer(std::function<void()> fn) {
  // The KeepAlive travels with the function, so the loop lives until it ran.
  auto keep_alive = std::make_shared<KeepAlive>(*this);
  post([keep_alive, fn = std::move(fn)]() { fn(); });
}

void Loop::acquire() {
  if (keep_alive_count_++ == 0) uv_ref(async_.base());
}

void Loop::release() {
  if (--keep_alive_count_ == 0 && async_.is_open()) uv_unref(async_.base());
}

void Loop::on_async(uv_async_t* async) {
  static_cast<Loop*>(async->data)->drain_posted();
}

void Loop::drain_posted() {
  // Functions posted while we run go to the next batch (uv_async_send again),
  // so a function that posts itself cannot starve the loop.
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch)
    fn();
}

}  // namespace tether::core
