#include "agent/outbox_budget.hpp"

#include <sys/statvfs.h>

#include <algorithm>

namespace tether::agent {

namespace {

// A slice kept for finals, which must always fit.
constexpr uint64_t kFinalsReserve = 1 << 20;

}  // namespace

OutboxBudget::OutboxBudget(core::Loop& loop, FrameStore& frames, BudgetOptions options)
    : loop_(loop), frames_(frames), options_(std::move(options)), room_(loop) {}

uint64_t OutboxBudget::output_limit() const {
  const uint64_t reserve = std::min<uint64_t>(kFinalsReserve, options_.max_bytes / 8);
  return options_.max_bytes - reserve;
}

bool OutboxBudget::has_room(uint64_t bytes) const {
  return frames_.bytes() + bytes <= output_limit();
}

bool OutboxBudget::has_flow_room(uint64_t bytes) const {
  if (!gaps_allowed_) return has_room(bytes);  // no gaps: nothing may be dropped
  return !channel_live_ || frames_.bytes() + bytes <= output_limit() / 2;
}

bool OutboxBudget::must_drop(uint64_t bytes) const {
  return options_.policy == OutboxFullPolicy::kDropOldest && gaps_allowed_ && !has_room(bytes);
}

bool OutboxBudget::make_room(const protocol::AttemptRef& attempt, uint64_t needed,
                             int64_t sent_through_id, std::vector<Dropped>& dropped) {
  // Only frames never sent: one that was sent may already be at the hub, and
  // then the bytes counted as dropped would not match the gaps it records.
  // (Sent, unacked frames are bounded by the send window.) Every conversion
  // frees space (FrameStore::oldest_unsent_output), so this ends.
  while (!has_room(needed)) {
    const auto victims = frames_.oldest_unsent_output(attempt.attempt_id, sent_through_id);
    if (victims.empty()) return false;
    for (const auto& victim : victims) {
      if (has_room(needed)) break;
      frames_.convert_to_gap(attempt, victim);
      dropped.push_back({victim.span.stream, victim.span.length});
    }
  }
  return true;
}

void OutboxBudget::set_gaps_allowed(bool allowed) {
  gaps_allowed_ = allowed;
  room_.notify_all();
}

void OutboxBudget::set_channel_live(bool live) {
  channel_live_ = live;
  if (!live) room_.notify_all();  // paused readers go on (and may drop)
}

bool OutboxBudget::disk_has_room(uint64_t bytes) {
  loop_.update_time();
  const uint64_t now = loop_.now_ms();
  if (!disk_checked_ || now - disk_checked_ms_ >= 100 || written_since_check_ >= (1u << 20)) {
    struct statvfs fs {};
    if (::statvfs(options_.state_dir.c_str(), &fs) != 0)
      return true;  // cannot tell: let SQLite say
    disk_free_bytes_ = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    disk_checked_ms_ = now;
    disk_checked_ = true;
    written_since_check_ = 0;
  }
  // Each byte is written twice (the WAL, then the database at a checkpoint).
  const uint64_t needed = options_.min_free_bytes + 2 * (bytes + written_since_check_);
  return disk_free_bytes_ >= needed;
}

}  // namespace tether::agent
