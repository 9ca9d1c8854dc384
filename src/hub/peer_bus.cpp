#include "hub/peer_bus.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "core/log.hpp"

namespace tether::hub {

namespace {

// NOTIFY refuses payloads of 8000 bytes or more (PostgreSQL docs, "NOTIFY");
// a cancel's reason is cut well below that.
constexpr size_t kMaxReasonBytes = 2000;

// The first word of `text` from `from`, and where the next one starts.
std::string word(const std::string& text, size_t& from) {
  const size_t end = std::min(text.find_first_of(" \n", from), text.size());
  std::string found = text.substr(from, end - from);
  from = end < text.size() && text[end] == ' ' ? end + 1 : end;
  return found;
}

}  // namespace

PeerBus::PeerBus(core::Loop& loop, core::PgStore& store, core::PgSettings settings,
                 EventLog& events, EventHub& viewers, Handlers handlers)
    : loop_(loop),
      store_(store),
      settings_(std::move(settings)),
      events_(events),
      viewers_(viewers),
      handlers_(std::move(handlers)),
      retry_(loop),
      batch_(store, [this](std::vector<Notice> batch) { send_batch(batch); }) {
  settings_.application_name += " (listening)";
}

Result<void> PeerBus::start() {
  TETHER_TRY(connection, core::PgConnection::connect(settings_));
  auto heard = [this](const core::PgNotification& notice) { on_notice(notice); };
  auto lost = [this](const Error& error) { on_listener_lost(error); };
  TETHER_TRY(listener,
             core::PgListener::start(loop_, std::move(*connection), {kChannel}, heard, lost));
  listener_ = std::move(*listener);
  ++connections_;
  return {};
}

void PeerBus::notify(Notice notice) {
  // Kept only if this entry point's writes are (a failed guarded() block
  // drops what it gathered).
  batch_.add(std::move(notice));
}

namespace {

std::string event_payload(const StoredEvent& event) {
  std::string payload = "event " + std::to_string(event.id) + " " + event.task_id;
  if (!event.run_id.empty() && event.run_id != event.task_id) payload += " " + event.run_id;
  return payload;
}

}  // namespace

void PeerBus::send_batch(const std::vector<Notice>& batch) {
  // An event stored by a before-commit action (a run's decision) may still
  // be queued, its id unknown: it goes first. An entry point's own went
  // at its end.
  const auto unsent = [](const Notice& notice) { return notice.event && notice.event->id == 0; };
  if (std::any_of(batch.begin(), batch.end(), unsent)) store_.send_queued();
  std::vector<std::string> payloads;
  payloads.reserve(batch.size());
  for (const auto& notice : batch) {
    if (unsent(notice)) throw std::logic_error("peer notice of an event that was never stored");
    payloads.push_back(notice.event ? event_payload(*notice.event) : notice.payload);
  }
  // One statement for the turn's notices, sent in the order queued: the
  // subquery's ORDER BY keeps it from being flattened, and the volatile
  // pg_notify runs as its sorted rows come (PostgreSQL queues notices in
  // the order they are made). Nobody reads its rows: it goes in one round
  // trip with the COMMIT after it, which fails with it.
  store_.execute_later(
      "SELECT pg_notify('tether_hub', notice) FROM (SELECT notice FROM unnest(?::text[]) "
      "WITH ORDINALITY AS queued (notice, n) ORDER BY n) AS ordered",
      core::pg_text_array(payloads));
}

void PeerBus::wake(const std::string& agent) {
  notify({agent.empty() ? "wake" : "wake " + agent, nullptr});
}

void PeerBus::cancel(const std::string& agent, const protocol::TaskCancel& cancel) {
  std::string reason = cancel.reason;
  if (reason.size() > kMaxReasonBytes) {
    // Cut where a UTF-8 character starts: the first byte left out is no
    // continuation byte.
    size_t cut = kMaxReasonBytes;
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80)
      --cut;
    reason.resize(cut);
  }
  // PostgreSQL's text holds no NUL byte; libpq cut a parameter there before.
  if (const size_t nul = reason.find('\0'); nul != std::string::npos) reason.resize(nul);
  notify({"cancel " + agent + " " + cancel.attempt.task_id + " " + cancel.attempt.attempt_id +
              "\n" + reason,
          nullptr});
}

void PeerBus::publish(std::shared_ptr<const StoredEvent> event) {
  notify({"", event});
  // Kept only once committed (a turn rolled back sends no notice), and only
  // while someone here watches; otherwise the notice finds no viewer.
  store_.after_commit([this, event = std::move(event)]() mutable {
    if (!viewers_.watched(event->task_id) && !viewers_.watched(event->run_id)) return;
    own_events_.emplace(event->id, std::move(event));
  });
}

void PeerBus::on_notice(const core::PgNotification& notice) {
  ++received_;
  const std::string& text = notice.payload;
  size_t at = 0;
  const std::string kind = word(text, at);
  if (kind == "event") {
    on_event(text.substr(at));
    return;
  }
  // This hub acted on its own wakes and cancels when it committed them.
  if (notice.sender_pid == store_.server_pid()) return;
  if (kind == "wake") {
    if (handlers_.wake) handlers_.wake(word(text, at));
  } else if (kind == "cancel") {
    const std::string agent = word(text, at);
    protocol::TaskCancel cancel;
    cancel.attempt.task_id = word(text, at);
    cancel.attempt.attempt_id = word(text, at);
    if (at < text.size() && text[at] == '\n') cancel.reason = text.substr(at + 1);
    if (handlers_.cancel && !agent.empty()) handlers_.cancel(agent, cancel);
  } else {
    core::log_warning(
        "hub", "peer notice not understood (a newer hub on the database?): " + text.substr(0, 80));
  }
}

void PeerBus::on_event(const std::string& fields) {
  size_t at = 0;
  const std::string id_text = word(fields, at);
  uint64_t id = 0;
  const auto parsed = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
  if (parsed.ec != std::errc() || parsed.ptr != id_text.data() + id_text.size()) return;
  if (auto own = own_events_.find(id); own != own_events_.end()) {
    auto event = std::move(own->second);
    // Older entries were never watched long enough to be published: their
    // notices came before, so they are gone (a viewer replays them).
    own_events_.erase(own_events_.begin(), std::next(own));
    viewers_.publish(event);
    return;
  }
  const std::string task_id = word(fields, at);
  const std::string run_id = word(fields, at);
  if (!viewers_.watched(task_id) && !(run_id.size() && viewers_.watched(run_id))) return;
  std::optional<StoredEvent> stored;
  const auto outcome =
      store_.guarded("event " + id_text + " for viewers", [&] { stored = events_.read(id); });
  if (outcome != core::SqlStore::Outcome::kDone) {
    // A viewer must not go on past a gap: close them all, as when notices
    // are lost; each resumes with Last-Event-ID.
    if (handlers_.lost) handlers_.lost();
    return;
  }
  if (stored) viewers_.publish(std::make_shared<const StoredEvent>(std::move(*stored)));
}

void PeerBus::on_listener_lost(const Error& error) {
  core::log_warning("hub", "lost the connection that hears the other hubs (" + error.message +
                               "); listening again");
  own_events_.clear();
  // Not destroyed here: PgListener allows it in on_lost, but a deferred
  // reset keeps this frame simple. The bus may be gone by then (the hub
  // shut down): the weak pointer says so.
  loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    listener_.reset();
    listen_again();
  });
  if (handlers_.lost) handlers_.lost();
}

void PeerBus::listen_again() {
  auto started = start();
  if (started) {
    backoff_.reset();
    core::log_info("hub", "listening to the other hubs again");
    // Whatever was sent while nobody here listened is unknown.
    if (handlers_.lost) handlers_.lost();
    return;
  }
  const uint64_t delay = backoff_.next_delay_ms();
  core::log_warning("hub", "cannot listen to the other hubs: " + started.error().message +
                               "; trying again in " + std::to_string(delay) + " ms");
  retry_.start(delay, [this] { listen_again(); });
}

}  // namespace tether::hub
