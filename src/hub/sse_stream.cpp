#include "hub/sse_stream.hpp"

#include "core/log.hpp"
#include "hub/task_state.hpp"
#include "protocol/run_api.hpp"

namespace tether::hub {

namespace {

constexpr int kReplayPage = 256;

}  // namespace

SseStream::SseStream(core::Loop& loop, core::SqlStore& store, EventLog& events, EventHub& hub,
                     std::shared_ptr<core::HttpExchange> exchange, SseSubject subject,
                     uint64_t after_id, bool follow, bool with_output)
    : loop_(loop),
      store_(store),
      events_(events),
      hub_(hub),
      exchange_(std::move(exchange)),
      subject_(std::move(subject)),
      last_sent_id_(after_id),
      follow_(follow),
      with_output_(with_output),
      heartbeat_(loop),
      reauthorize_(loop) {}

SseStream::~SseStream() {
  if (subscription_) hub_.unsubscribe(subscription_);
}

void SseStream::start() {
  exchange_->begin_stream(
      200, "text/event-stream",
      {{"cache-control", "no-cache"}, {"x-accel-buffering", "no"}, {"connection", "keep-alive"}});
  // The first bytes go out at once, so clients and proxies see the stream start.
  exchange_->write(": tether events for " + subject_.id + "\nretry: 2000\n\n");
  std::weak_ptr<SseStream> weak = weak_from_this();
  exchange_->set_on_drained([weak] {
    if (auto self = weak.lock()) self->pump_guarded();
  });
  exchange_->set_on_closed([weak] {
    if (auto self = weak.lock()) self->close();
  });
  subscription_ =
      hub_.subscribe(subject_.id, [weak](const std::shared_ptr<const StoredEvent>& event) {
        if (auto self = weak.lock()) self->on_live(event);
      });
  heartbeat();
  reauthorize();
  pump();
}

void SseStream::reauthorize() {
  if (!subject_.still_authorized) return;
  std::weak_ptr<SseStream> weak = weak_from_this();
  reauthorize_.start(kReauthorizeMs, [weak] {
    auto self = weak.lock();
    if (!self || self->finished_) return;
    bool allowed = true;
    // Its own entry point: a storage error keeps the stream (the next check
    // decides); only a definite "no" closes it.
    (void)self->store_.guarded("event stream authorization",
                               [&] { allowed = self->subject_.still_authorized(); });
    if (!allowed) {
      core::log_info("sse", "viewer of " + self->subject_.id +
                                ": token revoked or session ended; stream closed");
      self->close();
      return;
    }
    self->reauthorize();
  });
}

void SseStream::heartbeat() {
  std::weak_ptr<SseStream> weak = weak_from_this();
  heartbeat_.start(kHeartbeatMs, [weak] {
    auto self = weak.lock();
    if (!self || self->finished_) return;
    self->exchange_->write(": keepalive\n\n");
    self->heartbeat();
  });
}

void SseStream::pump_guarded() {
  // Its own entry point (the connection drained): a viewer whose replay
  // cannot be read now is closed, and resumes with Last-Event-ID.
  if (store_.guarded("event stream of " + subject_.id, [this] { pump(); }) !=
      core::SqlStore::Outcome::kDone) {
    close();
  }
}

void SseStream::pump() {
  if (finished_ || live_) return;
  if (exchange_->queued_bytes() > kMaxQueuedBytes / 4) return;  // wait for on_drained
  auto page = subject_.run ? events_.run_page(subject_.id, last_sent_id_, kReplayPage, with_output_)
                           : events_.page(subject_.id, last_sent_id_, kReplayPage, with_output_,
                                          subject_.output_from);
  for (const auto& event : page) {
    send(event);
    if (finished_) return;
  }
  if (page.size() == static_cast<size_t>(kReplayPage)) return;  // more after this page drains
  // Caught up with storage.
  if (!follow_) {
    end();
    return;
  }
  if (subject_.ended()) {
    end();
    return;
  }
  live_ = true;
}

void SseStream::on_live(const std::shared_ptr<const StoredEvent>& event) {
  if (finished_ || !live_ || event->id <= last_sent_id_) return;  // replay will read it
  if (!with_output_ && event->kind == EventKind::kOutput) return;
  if (exchange_->queued_bytes() > kMaxQueuedBytes) {
    core::log_warning("sse", "viewer of " + subject_.id + " more than " +
                                 std::to_string(kMaxQueuedBytes >> 20) +
                                 " MiB behind; disconnected (it resumes with Last-Event-ID)");
    close();
    return;
  }
  send(*event);
}

void SseStream::send(const StoredEvent& event) {
  exchange_->write(format_sse(event));
  last_sent_id_ = event.id;
  if (ends_subject(event)) end();
}

bool SseStream::ends_subject(const StoredEvent& event) const {
  if (subject_.run) {
    return event.kind == EventKind::kRun && protocol::is_terminal_run_state(event.state);
  }
  if (event.kind != EventKind::kStatus) return false;
  auto state = parse_task_state(event.state);
  return state && is_terminal(*state);
}

void SseStream::end() {
  if (finished_) return;
  exchange_->write("event: end\ndata: {}\n\n");
  close();
}

void SseStream::close() {
  if (finished_) return;
  finished_ = true;
  heartbeat_.stop();
  reauthorize_.stop();
  if (subscription_) {
    hub_.unsubscribe(subscription_);
    subscription_ = 0;
  }
  exchange_->finish();
  if (on_finished_) loop_.defer(std::exchange(on_finished_, nullptr));
}

}  // namespace tether::hub
