#include "agent/send_record.hpp"

#include "core/wall_clock.hpp"

namespace tether::agent {

namespace {

// How long send times wait before they are written.
constexpr uint64_t kSendMarkDelayMs = 1000;

}  // namespace

SendRecord::SendRecord(core::Loop& loop, core::SqliteStore& store, std::function<void()> wrote)
    : store_(store), wrote_(std::move(wrote)), timer_(loop) {}

SendRecord::~SendRecord() {
  timer_.stop();
  flush();
}

void SendRecord::load() {
  // The recorded mark, or (an outbox from before the mark existed) the last
  // frame with a send recorded.
  SQLite::Statement progress(store_.database(),
                             "SELECT max(coalesce((SELECT max(sent_through_id) FROM "
                             "send_progress), 0), coalesce((SELECT max(frame_id) FROM "
                             "frame_sends), 0))");
  progress.executeStep();
  sent_through_id_ = progress.getColumn(0).getInt64();
  // Its one row, so that each send is a single UPDATE.
  store_.database().exec(
      "INSERT INTO send_progress (sent_through_id) SELECT 0 "
      "WHERE NOT EXISTS (SELECT 1 FROM send_progress)");
}

void SendRecord::mark_sent(int64_t first_id, int64_t last_id) {
  if (last_id > sent_through_id_) {
    sent_through_id_ = last_id;
    store_.write([this, last_id] {
      auto record = store_.statement("UPDATE send_progress SET sent_through_id = ?");
      record.bind(1, last_id);
      record.exec();
      if (wrote_) wrote_();
    });
  }
  pending_.push_back({first_id, last_id, core::utc_now()});
  if (!timer_.active()) timer_.start(kSendMarkDelayMs, [this] { flush(); });
}

void SendRecord::flush() {
  if (pending_.empty()) return;
  store_.write([this] {
    if (pending_.empty()) return;
    // Only frames still stored: the others were acked (and their rows gone).
    auto update = store_.statement(
        "INSERT INTO frame_sends (frame_id, last_sent_at, send_count) "
        "SELECT id, ?1, 1 FROM frames WHERE id BETWEEN ?2 AND ?3 "
        "ON CONFLICT (frame_id) DO UPDATE SET last_sent_at = ?1, send_count = send_count + 1");
    for (const auto& mark : pending_) {
      update.reset();
      update.bind(1, mark.at);
      update.bind(2, mark.first_id);
      update.bind(3, mark.last_id);
      update.exec();
    }
    pending_.clear();
    if (wrote_) wrote_();
  });
}

}  // namespace tether::agent
