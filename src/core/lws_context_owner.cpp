#include "core/lws_context_owner.hpp"

#include <libwebsockets.h>

#include <dlfcn.h>
#include <uv.h>

#include <cstdio>

namespace tether::core {

namespace {

// Advances the teardown one stage per tick until lws has freed the context.
// The timer keeps the loop running meanwhile; it closes itself when done or
// after ~5 s.
struct TeardownWatch {
  std::shared_ptr<lws_context*> cell;
  int polls_left = 500;
  uv_timer_t timer{};
};

void on_watch_closed(uv_handle_t* handle) {
  std::unique_ptr<TeardownWatch> watch(static_cast<TeardownWatch*>(handle->data));
}

// True while any handle on the loop waits for its close callback. A stage
// of lws's teardown may close handles from close callbacks, and those finish
// on a later loop turn; the next stage (which frees the memory they live in)
// must wait for them. Timers run before the close phase, so this has to be
// checked rather than assumed.
bool handles_closing(uv_loop_t* loop) {
  bool closing = false;
  uv_walk(
      loop,
      [](uv_handle_t* handle, void* arg) {
        if (uv_is_closing(handle)) *static_cast<bool*>(arg) = true;
      },
      &closing);
  return closing;
}

void on_watch_tick(uv_timer_t* timer) {
  auto* watch = static_cast<TeardownWatch*>(timer->data);
  if (*watch->cell != nullptr && --watch->polls_left > 0) {
    if (!handles_closing(timer->loop)) lws_context_destroy(*watch->cell);
    return;
  }
  if (*watch->cell != nullptr) {
    std::fprintf(stderr, "tether: libwebsockets did not finish tearing down its context\n");
  }
  uv_close(reinterpret_cast<uv_handle_t*>(timer), &on_watch_closed);
}

}  // namespace

lws_context* LwsContextOwner::create(lws_context_creation_info& info) {
  foreign_loops_[0] = loop_.get();
  info.foreign_loops = foreign_loops_;
  cell_ = std::make_shared<lws_context*>(nullptr);
  info.pcontext = cell_.get();
  *cell_ = lws_create_context(&info);
  // Pin the libuv plugin lws just loaded (see the header): RTLD_NOLOAD only
  // takes a reference, and we never give it back.
  static void* const pinned_plugin = dlopen("libwebsockets-evlib_uv.so", RTLD_NOW | RTLD_NOLOAD);
  (void)pinned_plugin;
  return *cell_;
}

LwsContextOwner::~LwsContextOwner() {
  if (!cell_ || *cell_ == nullptr) return;
  lws_context_destroy(*cell_);  // closes every connection, synchronously
  if (*cell_ == nullptr) return;
  auto watch = std::make_unique<TeardownWatch>();
  watch->cell = cell_;
  uv_timer_init(loop_.get(), &watch->timer);
  watch->timer.data = watch.get();
  uv_timer_start(&watch->timer, &on_watch_tick, 10, 10);
  watch.release();  // owned by the timer from here; freed in on_watch_closed
}

}  // namespace tether::core
