// LwsContextOwner: creates and destroys an lws_context that runs on our loop.
//
// With a foreign libuv loop (lws 4.1), one lws_context_destroy() call only
// starts the teardown: it closes the connections, whose uv handles finish
// closing on later loop turns. lws expects further lws_context_destroy()
// calls after that, one stage per call, and reports the end by clearing the
// pointer given as info.pcontext. The owner starts the teardown from its
// destructor; a short timer then calls lws_context_destroy() once per tick
// until lws has freed the context.
//
// The last stage unloads lws's libuv plugin while libuv may still hold close
// callbacks that point into it. We keep one reference to the plugin for the
// life of the process, so its code stays mapped.
#pragma once

#include <memory>

#include "core/loop.hpp"

struct lws_context;
struct lws_context_creation_info;

namespace tether::core {

class LwsContextOwner {
 public:
  explicit LwsContextOwner(Loop& loop) : loop_(loop) {}
  LwsContextOwner(const LwsContextOwner&) = delete;
  LwsContextOwner& operator=(const LwsContextOwner&) = delete;
  ~LwsContextOwner();

  // Sets info.foreign_loops and info.pcontext, then creates the context.
  lws_context* create(lws_context_creation_info& info);
  lws_context* get() const { return cell_ ? *cell_ : nullptr; }

 private:
  Loop& loop_;
  void* foreign_loops_[1] = {nullptr};
  // lws writes nullptr here once the context is freed; heap-allocated so it
  // outlives this object while the loop finishes the teardown.
  std::shared_ptr<lws_context*> cell_;
};

}  // namespace tether::core
