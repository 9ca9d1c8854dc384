// SseStream: one viewer of a task's events (docs/protocol.md 11.1), or of a
// run's: its tasks' events and its own (11.5).
//
// It replays the stored events after Last-Event-ID a page at a time, each
// page only once the previous one has been written out, then switches to
// live events. Events committed while it replays are picked up by the next
// page, so nothing falls between replay and live. A live viewer more than
// kMaxQueuedBytes behind is disconnected; it resumes from storage.
#pragma once

#include <memory>
#include <string>

#include "core/timer.hpp"
#include "core/web_server.hpp"
#include "hub/event_hub.hpp"

namespace tether::hub {

// What a stream follows.
struct SseSubject {
  std::string id;  // a task's or a run's
  bool run = false;
  // Whether the subject has ended (read once replay has caught up: then the
  // stream ends instead of waiting for live events).
  std::function<bool()> ended;
  OutputFrom output_from;  // a task's ?tail_bytes= (none for a run)
  // Whether the viewer may still read it (its token not revoked, its web UI
  // session not ended): asked every kReauthorizeMs; the stream closes when
  // not. Empty: never asked.
  std::function<bool()> still_authorized;
};

class SseStream : public std::enable_shared_from_this<SseStream> {
 public:
  static constexpr size_t kMaxQueuedBytes = 4 << 20;
  static constexpr uint64_t kHeartbeatMs = 15'000;
  static constexpr uint64_t kReauthorizeMs = 5'000;

  SseStream(core::Loop& loop, core::SqlStore& store, EventLog& events, EventHub& hub,
            std::shared_ptr<core::HttpExchange> exchange, SseSubject subject, uint64_t after_id,
            bool follow, bool with_output);
  ~SseStream();

  void start();
  // Ends the stream (hub shutdown).
  void close();
  // Runs once when the stream has ended, for whoever owns it.
  void set_on_finished(std::function<void()> handler) { on_finished_ = std::move(handler); }
  bool finished() const { return finished_; }
  // The viewer closed its connection (see HttpExchange::peer_closed).
  bool viewer_gone() const { return exchange_->peer_closed(); }

 private:
  void pump();
  void pump_guarded();
  void on_live(const std::shared_ptr<const StoredEvent>& event);
  void send(const StoredEvent& event);
  void end();
  void heartbeat();
  // Closes the stream once subject_.still_authorized says no.
  void reauthorize();
  bool ends_subject(const StoredEvent& event) const;

  core::Loop& loop_;
  core::SqlStore& store_;
  EventLog& events_;
  EventHub& hub_;
  std::shared_ptr<core::HttpExchange> exchange_;
  SseSubject subject_;
  uint64_t last_sent_id_;
  bool follow_;
  bool with_output_;  // false: status, gap and final events only
  bool live_ = false;
  bool finished_ = false;
  uint64_t subscription_ = 0;
  core::Timer heartbeat_;
  core::Timer reauthorize_;
  std::function<void()> on_finished_;
};

}  // namespace tether::hub
