// Cooperative cancellation, single-threaded (the loop thread).
//
// A CancellationSource fires once; every CancellationToken copied from it sees
// the same state. Awaitables register a callback while they are suspended. The
// callbacks must not resume a coroutine inline: they stop the libuv operation
// and let its close callback (or Loop::defer) resume the awaiter, so a cancel()
// call never runs arbitrary coroutine code underneath its caller.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>

namespace tether::core {

class CancellationState {
 public:
  bool cancelled() const { return cancelled_; }

  uint64_t add(std::function<void()> callback) {
    const uint64_t id = next_id_++;
    callbacks_.emplace(id, std::move(callback));
    return id;
  }
  void remove(uint64_t id) { callbacks_.erase(id); }

  void cancel() {
    if (cancelled_) return;
    cancelled_ = true;
    // Each callback leaves the map before it runs, so a callback may freely
    // destroy other registrations (or its own) while we iterate.
    while (!callbacks_.empty()) {
      auto first = callbacks_.begin();
      auto callback = std::move(first->second);
      callbacks_.erase(first);
      callback();
    }
  }

 private:
  bool cancelled_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::function<void()>> callbacks_;
};

// A token that never fires is the default: pass {} where nothing can cancel.
class CancellationToken {
 public:
  CancellationToken() = default;
  explicit CancellationToken(std::shared_ptr<CancellationState> state) : state_(std::move(state)) {}

  bool cancelled() const { return state_ && state_->cancelled(); }
  bool can_be_cancelled() const { return static_cast<bool>(state_); }
  const std::shared_ptr<CancellationState>& state() const { return state_; }

 private:
  std::shared_ptr<CancellationState> state_;
};

class CancellationSource {
 public:
  CancellationSource() : state_(std::make_shared<CancellationState>()) {}

  CancellationToken token() const { return CancellationToken(state_); }
  void cancel() { state_->cancel(); }
  bool cancelled() const { return state_->cancelled(); }

 private:
  std::shared_ptr<CancellationState> state_;
};

// Runs `callback` when the token fires, for as long as this object lives. If
// the token has already fired, the callback runs at once, from the constructor.
class CancellationRegistration {
 public:
  CancellationRegistration(const CancellationToken& token, std::function<void()> callback)
      : state_(token.state()) {
    if (!state_) return;
    if (state_->cancelled()) {
      state_.reset();
      callback();
      return;
    }
    id_ = state_->add(std::move(callback));
  }
  CancellationRegistration(const CancellationRegistration&) = delete;
  CancellationRegistration& operator=(const CancellationRegistration&) = delete;
  ~CancellationRegistration() {
    if (state_) state_->remove(id_);
  }

 private:
  std::shared_ptr<CancellationState> state_;
  uint64_t id_ = 0;
};

}  // namespace tether::core
