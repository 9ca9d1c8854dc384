// Outbox: every frame the agent sends, stored before it is sent and kept
// until the hub acknowledges it (state_dir/outbox.db, SQLite in WAL mode).
//
//   frames    one row per frame, in replay order (id); the frame's JSON is
//             kept as text, as it will be sent, so an operator can read it
//             with sqlite3 (docs/operations.md has the queries)
//   attempts  one row per attempt still running or whose final is unacked:
//             pid, process group and start time (to find a leftover process
//             after a crash), and per stream the bytes that reached the
//             outbox, the bytes dropped and the running SHA-256 state, so a
//             restarted agent can report exactly what it kept
//
// Writes of one loop turn share one transaction (core::SqliteStore); the
// sender only sees frames once they are committed.
//
// The outbox is capped (outbox_max_bytes, counting frame JSON). A slice is
// always kept free for finals. When output does not fit:
//   drop-oldest  the attempt's oldest output frames not yet sent become gap
//                frames with the same seq and byte range and no data; the
//                bytes are counted as dropped and the final reports them
//   block        the attempt's readers wait (has_room()/room()) until acks
//                free space; its process blocks on a full pipe meanwhile
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/agent_config.hpp"
#include "core/notification.hpp"
#include "core/sqlite_store.hpp"
#include "core/timer.hpp"
#include "protocol/capabilities.hpp"
#include "protocol/frames.hpp"
#include "protocol/sha256.hpp"

namespace tether::agent {

enum class FrameKind { kStarted, kOutput, kGap, kFinal };
std::string_view to_string(FrameKind kind);

struct StoredFrame {
  int64_t id = 0;
  std::string message_id;
  std::string task_id;
  std::string attempt_id;
  FrameKind kind = FrameKind::kOutput;
  protocol::StreamName stream = protocol::StreamName::kStdout;
  uint64_t seq = 0;
  std::string payload;  // the frame's JSON, without sent_at
};

struct OutboxOptions {
  std::string agent_id;
  uint64_t max_bytes = 256ull << 20;
  OutboxFullPolicy policy = OutboxFullPolicy::kDropOldest;
  bool sync_full = false;
  // Output waits while the filesystem holding the outbox has less free than
  // this: a write that fails for want of space loses that turn's frames.
  uint64_t min_free_bytes = 16ull << 20;
};

struct StreamProgress {
  uint64_t bytes = 0;  // every byte the stream produced so far, dropped ones included
  uint64_t dropped = 0;
  uint64_t undelivered = 0;  // of `dropped`: never to be sent (abandon_stream)
  bool abandoned = false;
  std::string abandoned_because;  // for the final's error
  std::string digest_state;       // protocol::Sha256::state()
};

struct AttemptRecord {
  std::string task_id;
  std::string attempt_id;
  int pid = 0;
  int process_group = 0;
  uint64_t process_start = 0;  // of process_group (the task's init)
  uint64_t command_start = 0;  // of pid (the command)
  std::string boot_id;
  std::string started_at;
  StreamProgress out;
  StreamProgress err;
};

class Outbox {
 public:
  static Result<std::unique_ptr<Outbox>> open(core::Loop& loop, const std::string& state_dir,
                                              OutboxOptions options);
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  // Records the send times still pending.
  ~Outbox();

  // --- the attempts' side ---
  void record_started(const AttemptRecord& attempt, const protocol::StartedReport& started);
  void append_output(const protocol::AttemptRef& attempt, protocol::OutputChunk chunk,
                     const protocol::Sha256& digest_after);
  // Fills in each stream's dropped_bytes and undelivered_bytes, stores the
  // final and marks the attempt finished. Finals always fit (they use the reserved slice).
  void append_final(const protocol::AttemptRef& attempt, protocol::FinalReport report);
  // Output of a running attempt's stream counted as dropped so far.
  uint64_t dropped_bytes(const std::string& attempt_id, protocol::StreamName stream) const;
  // Block policy: whether `bytes` more output fit now; room() fires when acks free space.
  bool has_room(uint64_t bytes) const;
  // False while writes wait for a lock another process holds on the file:
  // readers pause (room() fires once the writes went through).
  bool writable() const { return store_->writes_waiting() == 0; }
  // Drop-oldest policy: while the channel is up (the hub is taking frames),
  // readers pause at half the cap rather than drop; while it is down they
  // never pause, and the oldest unsent output is dropped at the cap.
  bool has_flow_room(uint64_t bytes) const {
    if (!gaps_allowed_) return has_room(bytes);  // no gaps: nothing may be dropped
    return !channel_live_ || bytes_ + bytes <= output_limit() / 2;
  }
  // False while the hub takes no task.output_gap (its hello_ack): then
  // drop-oldest drops nothing and readers wait for room, as with block.
  void set_gaps_allowed(bool allowed) {
    gaps_allowed_ = allowed;
    room_.notify_all();
  }
  void set_channel_live(bool live) {
    channel_live_ = live;
    if (!live) room_.notify_all();  // paused readers go on (and may drop)
  }
  core::Notification& room() { return room_; }
  // Whether the outbox's filesystem can take `bytes` more and keep
  // min_free_bytes free. Either policy waits when it cannot: dropping output
  // frees no disk space that another process took. Looks (statvfs) at most
  // every 100 ms or 1 MiB of output.
  bool disk_has_room(uint64_t bytes);
  OutboxFullPolicy policy() const { return options_.policy; }

  // --- the sender's side ---
  // Committed frames with id > after_id, in order, up to about max_bytes.
  std::vector<StoredFrame> committed_after(int64_t after_id, size_t max_bytes);
  // The id of the first committed frame of `attempt`'s `stream` with seq >=
  // `seq`, or nothing (used to rewind after a gap error).
  std::optional<int64_t> frame_id(const std::string& attempt_id, protocol::StreamName stream,
                                  uint64_t seq);
  void mark_sent(int64_t first_id, int64_t last_id);
  // Every frame up to this id was sent at least once (drop-oldest spares it).
  int64_t sent_through_id() const { return sent_through_id_; }
  // Cumulative: drops every output and gap frame of the stream up to `seq`.
  void ack_output(const std::string& attempt_id, protocol::StreamName stream, uint64_t through_seq);
  // Drops one started or final frame; a final's ack also forgets its attempt.
  void ack_message(const std::string& message_id);
  // The hub no longer wants the attempt: drop everything held for it, and
  // any final it produces later.
  void discard_attempt(const std::string& attempt_id);
  bool discarded(const std::string& attempt_id) const { return discarded_.count(attempt_id) != 0; }
  // Drops frames of a stream below `next_seq` (the hub has them).
  void resume_from(const std::string& attempt_id, protocol::StreamName stream, uint64_t next_seq);
  // Nothing more of this stream can be delivered (docs/protocol.md 5): the
  // hub refused a frame of it for good, or wants seqs already deleted here.
  // Its frames from `from_seq` on are deleted; everything from `from_offset`
  // (the hub's stored bytes; by default the first deleted frame's offset) to
  // the stream's end, including output still to come, is counted as
  // undelivered (and dropped) in the final, with `why` in its error. A final
  // already stored is rewritten to say so.
  void abandon_stream(const std::string& attempt_id, protocol::StreamName stream, uint64_t from_seq,
                      std::optional<uint64_t> from_offset, std::string why);
  // The first seq of `attempt_id`'s `stream` still held, if any.
  std::optional<uint64_t> first_held_seq(const std::string& attempt_id,
                                         protocol::StreamName stream);
  // What the outbox holds, for agent.hello; nothing while another process
  // locks the file (a partial hello would tell the hub attempts are gone).
  std::optional<protocol::AgentHello> hello(const std::string& version);
  std::vector<StoredFrame> finals();
  // Fires after every commit that stored or dropped something.
  core::Notification& changed() { return changed_; }

  // --- crash recovery and status ---
  std::vector<AttemptRecord> running_attempts();
  uint64_t bytes() const { return bytes_; }
  uint64_t rows() const { return rows_; }
  // Output bytes dropped (drop-oldest) since this process opened the outbox.
  uint64_t dropped_total() const { return dropped_total_; }
  // When the oldest frame still held was stored (UTC text), empty if none.
  std::string oldest_created_at();
  // The attempts running now, with their progress so far.
  std::vector<AttemptRecord> live_attempts() const;
  core::SqliteStore& store() { return *store_; }
  // Runs `action` once this turn's writes are committed (at once if none).
  void when_committed(std::function<void()> action) { store_->after_commit(std::move(action)); }

 private:
  Outbox(core::Loop& loop, std::unique_ptr<core::SqliteStore> store, OutboxOptions options,
         std::string state_dir);
  void insert(const protocol::Frame& frame, FrameKind kind,
              std::optional<protocol::StreamName> stream, uint64_t seq, uint64_t offset,
              uint64_t length);
  // Drop-oldest: turns this attempt's oldest output into gaps until `needed`
  // bytes fit; false if there is nothing left to drop.
  bool make_room(const protocol::AttemptRef& attempt, uint64_t needed);
  uint64_t output_limit() const;
  void flush_progress();
  void flush_send_marks();
  void remember_fresh(StoredFrame frame);
  // Steps a DELETE ... RETURNING length(payload), ... and takes the rows off
  // the totals; `each_row` sees every row. True if anything was removed.
  bool account_removed(SQLite::Statement& remove,
                       const std::function<void(SQLite::Statement&)>& each_row = {});
  void forget_fresh();
  // Inside a write: the stored final of a finished attempt says that
  // `stream` could not be delivered from `from_offset` on.
  void rewrite_final(const std::string& attempt_id, protocol::StreamName stream,
                     uint64_t from_offset, uint64_t newly_dropped, const std::string& why);
  // Runs a read; false if another process locks the file (changed() fires
  // a little later so waiters read again). Other errors stop the agent.
  bool read_guarded(const char* what, const std::function<void()>& read);
  void after_write(bool freed);
  protocol::Frame frame_for(const protocol::AttemptRef& attempt, std::string message_id,
                            protocol::FramePayload payload) const;

  core::Loop& loop_;
  std::unique_ptr<core::SqliteStore> store_;
  OutboxOptions options_;
  std::string state_dir_;
  uint64_t disk_free_bytes_ = 0;  // at the last look, less what was written since
  uint64_t disk_checked_ms_ = 0;
  uint64_t written_since_check_ = 0;
  bool disk_checked_ = false;
  uint64_t bytes_ = 0;
  uint64_t rows_ = 0;
  uint64_t dropped_total_ = 0;
  bool channel_live_ = false;
  bool gaps_allowed_ = true;
  uint64_t high_water_bytes_ = 0;  // most held since the file last shrank
  int64_t sent_through_id_ = 0;
  int64_t newest_frame_id_ =
      0;  // the last frame inserted    // every frame up to here was sent once
  struct SendMark {
    int64_t first_id;
    int64_t last_id;
    std::string at;
  };
  std::vector<SendMark> pending_marks_;
  // Frames stored by this process and not yet handed to the sender, so it
  // need not read them back (see committed_after). Cleared whenever stored
  // frames change under it (drop-oldest, discard, resume, a failed commit).
  std::deque<StoredFrame> fresh_;
  size_t fresh_bytes_ = 0;
  bool fresh_overflowed_ = false;
  int64_t committed_max_id_ = 0;
  bool commit_hook_armed_ = false;
  bool freed_this_turn_ = false;
  std::map<std::string, AttemptRecord> live_;  // progress not yet written
  std::set<std::string> dirty_;
  std::set<std::string> discarded_;
  core::Notification room_;
  core::Notification changed_;
  core::Timer marks_timer_;
  core::Timer read_retry_;
};

}  // namespace tether::agent
