// Outbox: every frame the agent sends, stored before it is sent and kept
// until the hub acknowledges it (state_dir/outbox.db, SQLite in WAL mode).
//
// The file holds four tables, each with one owner:
//   frames                        FrameStore      what is to be sent, in order
//   attempts                      AttemptJournal  crash recovery and stream progress
//   send_progress, frame_sends    SendRecord      what has been sent
// and OutboxBudget decides what fits (the cap, drop-oldest, the disk guard).
//
// The Outbox opens the file (schema version 3 and its upgrades) and holds
// the operations that change several of those facts in one transaction:
// an attempt's started, output and final frames on one side, acks, discards
// and abandoned streams (from the sender) on the other. Writes of one loop
// turn share one transaction (core::SqliteStore); the sender only sees frames
// once they are committed. A write that fails for any reason but a lock held
// by another process stops the agent at once (exit 1, no unwinding); the
// restart recovers from what was committed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent_config.hpp"
#include "agent/attempt_journal.hpp"
#include "agent/frame_store.hpp"
#include "agent/outbox_budget.hpp"
#include "agent/send_record.hpp"
#include "core/notification.hpp"
#include "core/sqlite_store.hpp"
#include "core/timer.hpp"
#include "protocol/frames.hpp"
#include "protocol/sha256.hpp"

namespace tether::agent {

struct OutboxOptions {
  std::string agent_id;
  uint64_t max_bytes = 256ull << 20;
  OutboxFullPolicy policy = OutboxFullPolicy::kDropOldest;
  bool sync_full = false;
  // Output waits while the filesystem holding the outbox has less free than
  // this: a write that fails for want of space loses that turn's frames.
  uint64_t min_free_bytes = 16ull << 20;
};

class Outbox {
 public:
  // Creates state_dir (0700) and outbox.db (0600) if missing. Errors:
  // "state_dir" (cannot create it), the store's open and schema errors.
  static Result<std::unique_ptr<Outbox>> open(core::Loop& loop, const std::string& state_dir,
                                              OutboxOptions options);
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  // Records the send times still pending.
  ~Outbox();

  FrameStore& frames() { return frames_; }
  const FrameStore& frames() const { return frames_; }
  AttemptJournal& attempts() { return attempts_; }
  OutboxBudget& budget() { return budget_; }
  SendRecord& sends() { return sends_; }
  core::SqliteStore& store() { return *store_; }

  // --- an attempt's frames ---
  void record_started(const JournaledAttempt& attempt, const protocol::StartedReport& started);
  // Stores a chunk of output, or a gap in its place when it was dropped
  // (drop-oldest) or its stream was abandoned (then it is only counted).
  void append_output(const protocol::AttemptRef& attempt, protocol::OutputChunk chunk,
                     const protocol::Sha256& digest_after);
  // Fills in each stream's dropped and undelivered bytes, stores the final
  // and marks the attempt finished. Finals always fit (they use the reserved
  // slice). Nothing is stored for an attempt the hub discarded.
  void append_final(const protocol::AttemptRef& attempt, protocol::FinalReport report);
  // False while writes wait for a lock another process holds on the file:
  // readers pause (budget().room() fires once the writes went through).
  bool writable() const { return store_->writes_waiting() == 0; }

  // --- what the hub said ---
  // Cumulative: drops every output and gap frame of the stream up to `seq`.
  void ack_output(const std::string& attempt_id, protocol::StreamName stream, uint64_t through_seq);
  // Drops one started or final frame; a final's ack also forgets its attempt.
  void ack_message(const std::string& message_id);
  // The hub no longer wants the attempt: drop everything held for it, and
  // any final it produces later.
  void discard_attempt(const std::string& attempt_id);
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

  // Fires after every commit that stored or dropped something, and when a
  // read found the file locked (read again).
  core::Notification& changed() { return changed_; }
  // Runs `action` once this turn's writes are committed (at once if none).
  void when_committed(std::function<void()> action) { store_->after_commit(std::move(action)); }

 private:
  Outbox(core::Loop& loop, std::unique_ptr<core::SqliteStore> store, OutboxOptions options,
         std::string state_dir);
  void insert(const std::string& message_id, protocol::FramePayload payload, FrameKind kind,
              std::optional<OutputSpan> span = std::nullopt);
  // Arms the turn's commit hooks; `freed` says the turn made room.
  void after_write(bool freed);

  std::unique_ptr<core::SqliteStore> store_;
  FrameStore frames_;
  AttemptJournal attempts_;
  OutboxBudget budget_;
  SendRecord sends_;
  bool commit_hook_armed_ = false;
  bool freed_this_turn_ = false;
  core::Notification changed_;
  core::Timer read_retry_;
};

}  // namespace tether::agent
