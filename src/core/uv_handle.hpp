// UvHandle<H>: RAII ownership of one libuv handle.
//
// libuv may touch a handle until its close callback has run, which is after
// the C++ owner would normally be gone. So the handle lives in a heap box that
// the close callback frees; the owner's destructor only starts the close. An
// optional notification lets an awaiter resume once the close has finished,
// which is how one-shot awaitables guarantee "closed before the owner resumes".
#pragma once

#include <uv.h>

#include <memory>
#include <utility>

namespace tether::core {

template <class H>
class UvHandle {
 public:
  using CloseNotify = void (*)(void* context);

  UvHandle() : box_(std::make_unique<Box>()) {}
  UvHandle(UvHandle&&) noexcept = default;
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close();
      box_ = std::move(other.box_);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { close(); }

  H* get() const { return &box_->handle; }
  uv_handle_t* base() const { return reinterpret_cast<uv_handle_t*>(&box_->handle); }
  uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(&box_->handle); }

  // Call after uv_*_init succeeded: from then on closing goes through libuv.
  void mark_initialized() { box_->initialized = true; }
  bool is_open() const { return box_ && box_->initialized; }

  // Starts closing. `notify(context)` runs from libuv's close callback, after
  // which the memory is freed. Safe to call on an empty or closed handle.
  void close(CloseNotify notify = nullptr, void* context = nullptr) {
    if (!box_) return;
    if (!box_->initialized) {
      box_.reset();
      if (notify) notify(context);
      return;
    }
    box_->notify = notify;
    box_->context = context;
    Box* raw = box_.release();
    raw->handle.data = raw;
    uv_close(reinterpret_cast<uv_handle_t*>(&raw->handle), &UvHandle::on_closed);
  }

 private:
  struct Box {
    H handle{};
    bool initialized = false;
    CloseNotify notify = nullptr;
    void* context = nullptr;
  };

  static void on_closed(uv_handle_t* handle) {
    std::unique_ptr<Box> box(static_cast<Box*>(handle->data));
    if (box->notify) box->notify(box->context);
  }

  std::unique_ptr<Box> box_;
};

}  // namespace tether::core
