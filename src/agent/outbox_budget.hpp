// OutboxBudget: how much output the outbox may take, and what happens when
// it is full (docs/agent.md, outbox_max_bytes and outbox_full_policy).
//
// The cap counts frame JSON (FrameStore::bytes()); a slice of it is always
// kept for finals. When output does not fit:
//   drop-oldest  the attempt's oldest output frames never sent become gap
//                frames with the same seq and byte range and no data
//                (make_room); the bytes are counted as dropped and the final
//                reports them
//   block        the attempt's readers wait (has_room()/room()) until acks
//                free space; its process blocks on a full pipe meanwhile
// Either way output also waits while the outbox's filesystem has less than
// min_free_bytes free (disk_has_room): dropping output frees no disk space
// that another process took.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/agent_config.hpp"
#include "agent/frame_store.hpp"
#include "core/loop.hpp"
#include "core/notification.hpp"

namespace tether::agent {

struct BudgetOptions {
  uint64_t max_bytes = 256ull << 20;
  OutboxFullPolicy policy = OutboxFullPolicy::kDropOldest;
  // Output waits while the filesystem holding the outbox has less free than
  // this: a write that fails for want of space loses that turn's frames.
  uint64_t min_free_bytes = 16ull << 20;
  std::string state_dir;  // the filesystem to watch
};

class OutboxBudget {
 public:
  OutboxBudget(core::Loop& loop, FrameStore& frames, BudgetOptions options);

  OutboxFullPolicy policy() const { return options_.policy; }
  // The cap less the slice kept for finals.
  uint64_t output_limit() const;
  // Block policy: whether `bytes` more output fit now; room() fires when acks free space.
  bool has_room(uint64_t bytes) const;
  // Drop-oldest policy: while the channel is live (a session is open, or
  // the agent's first one is being opened: set_channel_live), readers pause
  // at half the cap rather than drop; while it is down they never pause, and
  // the oldest unsent output is dropped at the cap.
  bool has_flow_room(uint64_t bytes) const;
  // Whether storing about `bytes` of output means dropping older output first.
  bool must_drop(uint64_t bytes) const;
  // Drop-oldest: turns the attempt's oldest output never sent (id above
  // `sent_through_id`) into gaps until `needed` bytes fit. Each stream's
  // dropped bytes are added to `dropped`; false if nothing was left to drop.
  struct Dropped {
    protocol::StreamName stream;
    uint64_t bytes;
  };
  bool make_room(const protocol::AttemptRef& attempt, uint64_t needed, int64_t sent_through_id,
                 std::vector<Dropped>& dropped);

  // False while the hub takes no task.output_gap (its hello_ack): then
  // drop-oldest drops nothing and readers wait for room, as with block.
  void set_gaps_allowed(bool allowed);
  bool gaps_allowed() const { return gaps_allowed_; }
  void set_channel_live(bool live);
  core::Notification& room() { return room_; }

  // Whether the outbox's filesystem can take `bytes` more and keep
  // min_free_bytes free. Looks (statvfs) at most every 100 ms or 1 MiB of
  // output written (note_written).
  bool disk_has_room(uint64_t bytes);
  void note_written(uint64_t bytes) { written_since_check_ += bytes; }

 private:
  core::Loop& loop_;
  FrameStore& frames_;
  BudgetOptions options_;
  bool channel_live_ = false;
  bool gaps_allowed_ = true;
  uint64_t disk_free_bytes_ = 0;  // at the last look
  uint64_t disk_checked_ms_ = 0;
  uint64_t written_since_check_ = 0;
  bool disk_checked_ = false;
  core::Notification room_;
};

}  // namespace tether::agent
