#include "agent/outbox.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/log.hpp"

namespace tether::agent {

namespace {

using protocol::StreamName;

// Version 3. Column names and text payloads are for operators with sqlite3.
constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS frames (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- replay order
  message_id   TEXT NOT NULL UNIQUE,
  task_id      TEXT NOT NULL,
  attempt_id   TEXT NOT NULL,
  kind         TEXT NOT NULL,      -- started, output, gap or final
  stream       TEXT,               -- stdout or stderr (output and gap)
  seq          INTEGER,
  byte_offset  INTEGER,
  length       INTEGER,            -- output bytes carried (or dropped, for a gap)
  payload      TEXT NOT NULL,      -- the frame's JSON as it is sent
  created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_by_stream ON frames (attempt_id, stream, seq);
CREATE INDEX IF NOT EXISTS frames_by_kind ON frames (kind, attempt_id);

-- When each frame still waiting for an ack was last sent, and how often.
-- Not columns of frames: SQLite rewrites a whole row, payload included, to
-- change one column, so every resend of a backlog would write it again.
CREATE TABLE IF NOT EXISTS frame_sends (
  frame_id     INTEGER PRIMARY KEY REFERENCES frames (id) ON DELETE CASCADE,
  last_sent_at TEXT NOT NULL,
  send_count   INTEGER NOT NULL
);

-- One row: every frame with id <= sent_through_id has been sent at least
-- once (the hub may have it, so drop-oldest must not turn it into a gap).
CREATE TABLE IF NOT EXISTS send_progress (
  sent_through_id INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS attempts (
  attempt_id           TEXT PRIMARY KEY,
  task_id              TEXT NOT NULL,
  state                TEXT NOT NULL,  -- running or finished (final not yet acked)
  pid                  INTEGER,
  process_group        INTEGER,
  process_start        INTEGER,        -- /proc/PID/stat start time of process_group (the task's
                                       -- init): tells our process from a reused pid
  command_start        INTEGER,        -- the same for pid (the command)
  boot_id              TEXT,
  started_at           TEXT NOT NULL,
  stdout_bytes         INTEGER NOT NULL DEFAULT 0,
  stderr_bytes         INTEGER NOT NULL DEFAULT 0,
  stdout_dropped_bytes INTEGER NOT NULL DEFAULT 0,
  stderr_dropped_bytes INTEGER NOT NULL DEFAULT 0,
  -- of the dropped bytes, those that can never be sent (the hub refused the
  -- stream, docs/protocol.md 5)
  stdout_undelivered_bytes INTEGER NOT NULL DEFAULT 0,
  stderr_undelivered_bytes INTEGER NOT NULL DEFAULT 0,
  stdout_sha256_state  BLOB,
  stderr_sha256_state  BLOB,
  updated_at           TEXT NOT NULL
);
)SQL";

// Version 1 kept last_sent_at and send_count in frames.
constexpr const char* kUpgradeTo2 = R"SQL(
CREATE TABLE frame_sends (
  frame_id     INTEGER PRIMARY KEY REFERENCES frames (id) ON DELETE CASCADE,
  last_sent_at TEXT NOT NULL,
  send_count   INTEGER NOT NULL
);
INSERT INTO frame_sends (frame_id, last_sent_at, send_count)
  SELECT id, last_sent_at, send_count FROM frames WHERE last_sent_at IS NOT NULL;
ALTER TABLE frames DROP COLUMN last_sent_at;
ALTER TABLE frames DROP COLUMN send_count;
)SQL";
// Version 2 had no undelivered counts, and no command_start (the command
// led its own group then; now the task's init does).
constexpr const char* kUpgradeTo3 = R"SQL(
ALTER TABLE attempts ADD COLUMN stdout_undelivered_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN stderr_undelivered_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN command_start INTEGER;
)SQL";
constexpr const char* kUpgrades[] = {kUpgradeTo2, kUpgradeTo3};

// The outbox cannot be written. The process exits at once (no unwinding
// through coroutines that still hold the turn's state) with status 1, which
// the systemd unit restarts; committed frames are safe in the file.
[[noreturn]] void fail_stop(const std::string& why) {
  core::log_error("outbox", why + ": exiting; a restart recovers from what the outbox holds");
  std::fflush(nullptr);
  std::_Exit(1);
}

}  // namespace

Outbox::Outbox(core::Loop& loop, std::unique_ptr<core::SqliteStore> store, OutboxOptions options,
               std::string state_dir)
    : store_(std::move(store)),
      frames_(*store_, options.agent_id),
      attempts_(*store_),
      budget_(loop, frames_,
              BudgetOptions{options.max_bytes, options.policy, options.min_free_bytes,
                            std::move(state_dir)}),
      sends_(loop, *store_, [this] { after_write(false); }),
      changed_(loop),
      read_retry_(loop) {}

Outbox::~Outbox() {
  read_retry_.stop();
  try {
    sends_.flush();
    // Now, while the members the commit hooks touch still exist.
    (void)store_->commit();
  } catch (const SQLite::Exception& e) {
    core::log_warning("outbox", std::string("could not record send times: ") + e.what());
  }
}

Result<std::unique_ptr<Outbox>> Outbox::open(core::Loop& loop, const std::string& state_dir,
                                             OutboxOptions options) {
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(Errc::kIo, "state_dir",
                      "cannot create state directory '" + state_dir + "': " + std::strerror(errno));
  }
  core::SqliteStore::Options store_options;
  store_options.sync_full = options.sync_full;
  // Half the free space output leaves alone, at most 8 MiB: room for the
  // acks, finals and progress written while output waits for space.
  store_options.disk_reserve_bytes = std::min<uint64_t>(options.min_free_bytes / 2, 8ull << 20);
  // Under a stream of output, one commit per 5 ms instead of one per loop
  // turn (thousands a second with 200 chatty tasks): each commit appends
  // every page it touched to the WAL and brings the next checkpoint's fsync
  // closer. A lone line still commits in its own turn.
  store_options.group_commit_ms = 5;
  // A checkpoint every 4,000 pages (16 MiB of WAL, journal_size_limit's
  // size) instead of 1,000: the outbox rewrites the same few index pages
  // in every commit, so a checkpoint copies about as much either way, and
  // comes a quarter as often (with its fsync).
  store_options.wal_autocheckpoint_pages = 4000;
  const std::string path = state_dir + "/outbox.db";
  TETHER_TRY(store, core::SqliteStore::open(path, store_options));
  if (auto schema = (*store)->apply_schema(kSchema, 3, kUpgrades); !schema) return schema.error();
  (*store)->attach_loop(loop);
  std::unique_ptr<Outbox> outbox(
      new Outbox(loop, std::move(*store), std::move(options), state_dir));
  Outbox* raw = outbox.get();
  // SQLite rolled the turn back (a full disk, an I/O error): its frames are
  // gone while the streams' sequence numbers and digests moved on, so going
  // on would leave holes no replay can fill. Stop instead; the restart
  // replays what was committed and reports the running attempts lost.
  raw->store_->set_on_commit_failed([](const Error& error) { fail_stop(error.message); });
  // Only a real storage failure stops the agent; a lock held by another
  // process (sqlite3, a task that opened the file) only makes writes wait,
  // and reads try again a little later.
  raw->store_->set_on_fatal([](const std::string& why) { fail_stop(why); });
  raw->store_->set_on_writes_applied([raw] {
    raw->budget_.room().notify_all();
    raw->changed_.notify_all();
  });
  raw->store_->set_on_read_busy([raw] {
    if (!raw->read_retry_.active())
      raw->read_retry_.start(100, [raw] { raw->changed_.notify_all(); });
  });
  raw->frames_.load();
  raw->sends_.load();
  // A file left large by an earlier run shrinks after its next drain too.
  struct stat file {};
  if (::stat(path.c_str(), &file) == 0)
    raw->frames_.set_high_water(static_cast<uint64_t>(file.st_size));
  return outbox;
}

void Outbox::after_write(bool freed) {
  freed_this_turn_ |= freed;
  if (commit_hook_armed_) return;
  commit_hook_armed_ = true;
  store_->before_commit([this] { attempts_.flush(); });
  store_->after_commit([this] {
    commit_hook_armed_ = false;
    frames_.committed();
    changed_.notify_all();
    if (std::exchange(freed_this_turn_, false)) budget_.room().notify_all();
    if (frames_.drained_after_backlog()) {
      // Drained after holding a lot: give the space back (an fsync, so only
      // after a backlog, never in steady state where the outbox empties at
      // every ack).
      frames_.note_reclaimed();
      store_->reclaim_space();
    }
  });
}

void Outbox::insert(const std::string& message_id, protocol::FramePayload payload, FrameKind kind,
                    std::optional<OutputSpan> span) {
  store_->begin_write();
  budget_.note_written(frames_.insert(message_id, std::move(payload), kind, span));
  after_write(false);
}

void Outbox::record_started(const JournaledAttempt& attempt,
                            const protocol::StartedReport& started) {
  store_->write([this, attempt, started] {
    attempts_.record_started(attempt);
    const protocol::AttemptRef ref{attempt.task_id, attempt.attempt_id};
    insert(protocol::started_message_id(attempt.attempt_id), protocol::TaskStarted{ref, started},
           FrameKind::kStarted);
  });
}

void Outbox::append_output(const protocol::AttemptRef& attempt, protocol::OutputChunk chunk,
                           const protocol::Sha256& digest_after) {
  store_->write([this, attempt, chunk = std::move(chunk),
                 digest_state = digest_after.state()]() mutable {
    auto& stream = attempts_.progress(attempt, chunk.stream);
    stream.bytes = chunk.offset + chunk.data.size();
    stream.digest_state = std::move(digest_state);
    const uint64_t size = chunk.data.size();
    if (stream.abandoned) {
      // Nothing of this stream can reach the hub any more: counted, not kept.
      attempts_.count_dropped(attempt.attempt_id, chunk.stream, size, /*undelivered=*/true);
      return;
    }
    const OutputSpan span{chunk.stream, chunk.seq, chunk.offset, size};
    const std::string message_id =
        protocol::output_message_id(attempt.attempt_id, chunk.stream, chunk.seq);
    // Worst-case size of the JSON (escaping can grow text); exact size is
    // known only after encoding, and the check only needs to be conservative.
    const uint64_t estimate = size * 2 + 512;
    if (!budget_.must_drop(estimate)) {
      insert(message_id, protocol::TaskOutput{attempt, std::move(chunk)}, FrameKind::kOutput, span);
      return;
    }
    if (attempts_.dropped_bytes(attempt.attempt_id, StreamName::kStdout) +
            attempts_.dropped_bytes(attempt.attempt_id, StreamName::kStderr) ==
        0) {
      // Said once per attempt; the final reports the exact count per stream.
      core::log_warning("outbox", "outbox full (" + std::to_string(frames_.bytes()) +
                                      " bytes): dropping the oldest unsent output of " +
                                      attempt.attempt_id + " (outbox_full_policy = drop-oldest)");
    }
    std::vector<OutboxBudget::Dropped> dropped;
    const bool made_room = budget_.make_room(attempt, estimate, sends_.sent_through_id(), dropped);
    for (const auto& drop : dropped)
      attempts_.count_dropped(attempt.attempt_id, drop.stream, drop.bytes);
    if (made_room) {
      insert(message_id, protocol::TaskOutput{attempt, std::move(chunk)}, FrameKind::kOutput, span);
      return;
    }
    // Nothing older of this attempt to drop: this chunk itself becomes a gap.
    attempts_.count_dropped(attempt.attempt_id, chunk.stream, size);
    insert(message_id,
           protocol::TaskOutputGap{attempt, chunk.stream, chunk.seq, chunk.offset, size},
           FrameKind::kGap, span);
  });
}

void Outbox::append_final(const protocol::AttemptRef& attempt, protocol::FinalReport report) {
  store_->write([this, attempt, report = std::move(report)]() mutable {
    if (attempts_.discarded(attempt.attempt_id)) return;
    attempts_.finish(attempt.attempt_id, report);
    insert(protocol::final_message_id(attempt.attempt_id),
           protocol::TaskFinal{attempt, std::move(report)}, FrameKind::kFinal);
  });
}

void Outbox::ack_output(const std::string& attempt_id, StreamName stream, uint64_t through_seq) {
  store_->write([this, attempt_id, stream, through_seq] {
    after_write(frames_.remove_output_through(attempt_id, stream, through_seq));
  });
}

void Outbox::ack_message(const std::string& message_id) {
  store_->write([this, message_id] {
    std::string finished_attempt;
    const bool freed = frames_.remove_message(message_id, &finished_attempt);
    if (!finished_attempt.empty()) attempts_.forget(finished_attempt);
    after_write(freed);
  });
}

void Outbox::discard_attempt(const std::string& attempt_id) {
  store_->write([this, attempt_id] {
    const bool freed = frames_.remove_attempt(attempt_id);
    attempts_.discard(attempt_id);
    after_write(freed);
  });
}

void Outbox::resume_from(const std::string& attempt_id, StreamName stream, uint64_t next_seq) {
  frames_.forget_fresh();  // rows change under the sender's copy
  if (next_seq > 1) ack_output(attempt_id, stream, next_seq - 1);
}

void Outbox::abandon_stream(const std::string& attempt_id, StreamName stream, uint64_t from_seq,
                            std::optional<uint64_t> from_offset, std::string why) {
  store_->write([this, attempt_id, stream, from_seq, from_offset, why = std::move(why)] {
    // The frames that can no longer go: their output bytes join the dropped ones.
    const auto removed = frames_.remove_stream_from(attempt_id, stream, from_seq);
    const uint64_t start = from_offset ? *from_offset : removed.first_offset.value_or(UINT64_MAX);
    if (!attempts_.abandon(attempt_id, stream, start, removed.output_bytes, why)) {
      // Finished: its stored final (if not yet acked) says so instead.
      frames_.rewrite_final(attempt_id, [&](protocol::FinalReport& report) {
        auto& summary = report.summary(stream);
        summary.dropped_bytes =
            std::min(summary.bytes, summary.dropped_bytes + removed.output_bytes);
        if (start <= summary.bytes) summary.undelivered_bytes = summary.bytes - start;
        // Undelivered bytes are dropped ones too (see AttemptJournal::abandon).
        summary.dropped_bytes = std::max(summary.dropped_bytes, summary.undelivered_bytes);
        if (report.error.find(why) == std::string::npos) {
          report.error += (report.error.empty() ? "" : "; ") + why;
        }
      });
    }
    after_write(removed.freed);
  });
}

}  // namespace tether::agent
