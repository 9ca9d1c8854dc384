#include "agent/outbox.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/log.hpp"
#include "core/wall_clock.hpp"

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

// How long send times wait before they are written (see mark_sent).
constexpr uint64_t kSendMarkDelayMs = 1000;

// Stored frames kept in memory for the sender: what is committed and not yet
// sent, which is little while the channel keeps up.
constexpr size_t kFreshCacheBytes = 4 << 20;

// An outbox that held this much shrinks its file once it is empty again.
constexpr uint64_t kReclaimAfterBytes = 8 << 20;

// A slice kept for finals, which must always fit.
constexpr uint64_t kFinalsReserve = 1 << 20;

std::optional<StreamName> stream_of(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return protocol::parse_stream_name(column.getString());
}

FrameKind parse_kind(const std::string& text) {
  if (text == "started") return FrameKind::kStarted;
  if (text == "gap") return FrameKind::kGap;
  if (text == "final") return FrameKind::kFinal;
  return FrameKind::kOutput;
}

StoredFrame read_frame(SQLite::Statement& row) {
  StoredFrame frame;
  frame.id = row.getColumn(0).getInt64();
  frame.message_id = row.getColumn(1).getString();
  frame.task_id = row.getColumn(2).getString();
  frame.attempt_id = row.getColumn(3).getString();
  frame.kind = parse_kind(row.getColumn(4).getString());
  frame.stream = stream_of(row.getColumn(5)).value_or(StreamName::kStdout);
  frame.seq = row.getColumn(6).isNull() ? 0 : static_cast<uint64_t>(row.getColumn(6).getInt64());
  frame.payload = row.getColumn(7).getString();
  return frame;
}

StreamProgress& progress(AttemptRecord& attempt, StreamName stream) {
  return stream == StreamName::kStdout ? attempt.out : attempt.err;
}

}  // namespace

std::string_view to_string(FrameKind kind) {
  switch (kind) {
    case FrameKind::kStarted:
      return "started";
    case FrameKind::kOutput:
      return "output";
    case FrameKind::kGap:
      return "gap";
    case FrameKind::kFinal:
      return "final";
  }
  return "output";
}

Outbox::Outbox(core::Loop& loop, std::unique_ptr<core::SqliteStore> store, OutboxOptions options,
               std::string state_dir)
    : loop_(loop),
      store_(std::move(store)),
      options_(std::move(options)),
      state_dir_(std::move(state_dir)),
      room_(loop),
      changed_(loop),
      marks_timer_(loop),
      read_retry_(loop) {}

Outbox::~Outbox() {
  marks_timer_.stop();
  read_retry_.stop();
  try {
    flush_send_marks();
    // Now, while the members the commit hooks touch still exist.
    (void)store_->commit();
  } catch (const SQLite::Exception& e) {
    core::log_warning("outbox", std::string("could not record send times: ") + e.what());
  }
}

Result<std::unique_ptr<Outbox>> Outbox::open(core::Loop& loop, const std::string& state_dir,
                                             OutboxOptions options) {
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error("state_dir",
                      "cannot create state directory '" + state_dir + "': " + std::strerror(errno));
  }
  core::SqliteStore::Options store_options;
  store_options.sync_full = options.sync_full;
  // Half the free space output leaves alone, at most 8 MiB: room for the
  // acks, finals and progress written while output waits for space.
  store_options.disk_reserve_bytes = std::min<uint64_t>(options.min_free_bytes / 2, 8ull << 20);
  auto store = core::SqliteStore::open(state_dir + "/outbox.db", store_options);
  if (!store) return store.error();
  if (auto schema = (*store)->apply_schema(kSchema, 3, kUpgrades); !schema) return schema.error();
  (*store)->attach_loop(loop);
  std::unique_ptr<Outbox> outbox(
      new Outbox(loop, std::move(*store), std::move(options), state_dir));
  // SQLite rolled the turn back (a full disk, an I/O error): its frames are
  // gone while the streams' sequence numbers and digests moved on, so going
  // on would leave holes no replay can fill. Stop instead; the restart
  // replays what was committed and reports the running attempts lost.
  outbox->store_->set_on_commit_failed([](const Error& error) { fail_stop(error.message); });
  // Only a real storage failure stops the agent; a lock held by another
  // process (sqlite3, a task that opened the file) only makes writes wait.
  outbox->store_->set_on_fatal([](const std::string& why) { fail_stop(why); });
  Outbox* raw = outbox.get();
  outbox->store_->set_on_writes_applied([raw] {
    raw->room_.notify_all();
    raw->changed_.notify_all();
  });
  SQLite::Statement totals(outbox->store_->database(),
                           "SELECT COUNT(*), COALESCE(SUM(length(CAST(payload AS BLOB))), 0), "
                           "COALESCE(MAX(id), 0) FROM frames");
  totals.executeStep();
  outbox->rows_ = static_cast<uint64_t>(totals.getColumn(0).getInt64());
  outbox->bytes_ = static_cast<uint64_t>(totals.getColumn(1).getInt64());
  outbox->committed_max_id_ = totals.getColumn(2).getInt64();
  // Where sending got to: the recorded mark, or (an outbox from before the
  // mark existed) the last frame with a send recorded.
  SQLite::Statement progress(
      outbox->store_->database(),
      "SELECT max(coalesce((SELECT max(sent_through_id) FROM send_progress), "
      "0), coalesce((SELECT max(frame_id) FROM frame_sends), 0))");
  progress.executeStep();
  outbox->sent_through_id_ = progress.getColumn(0).getInt64();
  // Its one row, so that each send is a single UPDATE.
  outbox->store_->database().exec(
      "INSERT INTO send_progress (sent_through_id) SELECT 0 "
      "WHERE NOT EXISTS (SELECT 1 FROM send_progress)");
  // A file left large by an earlier run shrinks after its next drain too.
  struct stat file {};
  const uint64_t on_disk = ::stat((state_dir + "/outbox.db").c_str(), &file) == 0
                               ? static_cast<uint64_t>(file.st_size)
                               : 0;
  outbox->high_water_bytes_ = std::max(outbox->bytes_, on_disk);
  return outbox;
}

uint64_t Outbox::output_limit() const {
  const uint64_t reserve = std::min<uint64_t>(kFinalsReserve, options_.max_bytes / 8);
  return options_.max_bytes - reserve;
}

bool Outbox::has_room(uint64_t bytes) const {
  return bytes_ + bytes <= output_limit();
}

bool Outbox::disk_has_room(uint64_t bytes) {
  loop_.update_time();
  const uint64_t now = loop_.now_ms();
  if (!disk_checked_ || now - disk_checked_ms_ >= 100 || written_since_check_ >= (1u << 20)) {
    struct statvfs fs {};
    if (::statvfs(state_dir_.c_str(), &fs) != 0) return true;  // cannot tell: let SQLite say
    disk_free_bytes_ = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    disk_checked_ms_ = now;
    disk_checked_ = true;
    written_since_check_ = 0;
  }
  // Each byte is written twice (the WAL, then the database at a checkpoint).
  const uint64_t needed = options_.min_free_bytes + 2 * (bytes + written_since_check_);
  return disk_free_bytes_ >= needed;
}

protocol::Frame Outbox::frame_for(const protocol::AttemptRef&, std::string message_id,
                                  protocol::FramePayload payload) const {
  protocol::Frame frame;
  frame.message_id = std::move(message_id);
  frame.agent_id = options_.agent_id;
  frame.payload = std::move(payload);
  return frame;
}

void Outbox::after_write(bool freed) {
  freed_this_turn_ |= freed;
  if (commit_hook_armed_) return;
  commit_hook_armed_ = true;
  store_->before_commit([this] { flush_progress(); });
  store_->after_commit([this] {
    commit_hook_armed_ = false;
    // The newest frame of this turn, not the last rowid: other tables
    // (send_progress) are written in the same transaction.
    committed_max_id_ = std::max(committed_max_id_, newest_frame_id_);
    changed_.notify_all();
    if (std::exchange(freed_this_turn_, false)) room_.notify_all();
    if (rows_ == 0 && high_water_bytes_ >= kReclaimAfterBytes) {
      // Drained after holding a lot: give the space back (an fsync, so only
      // after a backlog, never in steady state where the outbox empties at
      // every ack).
      high_water_bytes_ = 0;
      store_->reclaim_space();
    }
  });
}

void Outbox::insert(const protocol::Frame& frame, FrameKind kind, std::optional<StreamName> stream,
                    uint64_t seq, uint64_t offset, uint64_t length) {
  store_->begin_write();
  std::string payload = protocol::encode_frame(frame);
  std::string task_id;
  std::string attempt_id;
  std::visit(
      [&](const auto& body) {
        if constexpr (requires { body.attempt; }) {
          task_id = body.attempt.task_id;
          attempt_id = body.attempt.attempt_id;
        }
      },
      frame.payload);
  auto statement = store_->statement(
      "INSERT INTO frames (message_id, task_id, attempt_id, kind, stream, seq, byte_offset, "
      "length, "
      "payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  statement.bind(1, frame.message_id);
  statement.bind(2, task_id);
  statement.bind(3, attempt_id);
  statement.bind(4, std::string(to_string(kind)));
  if (stream) {
    statement.bind(5, std::string(protocol::to_string(*stream)));
    statement.bind(6, static_cast<int64_t>(seq));
    statement.bind(7, static_cast<int64_t>(offset));
    statement.bind(8, static_cast<int64_t>(length));
  } else {
    statement.bind(5);
    statement.bind(6);
    statement.bind(7);
    statement.bind(8);
  }
  statement.bindNoCopy(9, payload);
  statement.bind(10, core::utc_now());
  try {
    statement.exec();
  } catch (const SQLite::Exception& e) {
    // The same message again (a replayed final after a restart): nothing to add.
    if (store_->database().getErrorCode() == SQLITE_CONSTRAINT) return;
    fail_stop(store_->path() + ": storing a frame failed: " + e.what());
  }
  bytes_ += payload.size();
  written_since_check_ += payload.size();
  high_water_bytes_ = std::max(high_water_bytes_, bytes_);
  rows_ += 1;
  newest_frame_id_ = store_->database().getLastInsertRowid();
  // The payload moves on to the sender; SQLite has its own copy by now.
  remember_fresh({newest_frame_id_, frame.message_id, std::move(task_id), std::move(attempt_id),
                  kind, stream.value_or(StreamName::kStdout), seq, std::move(payload)});
  after_write(false);
}

void Outbox::record_started(const AttemptRecord& attempt, const protocol::StartedReport& started) {
  store_->write([this, attempt, started]() mutable {
    auto statement = store_->statement(
        "INSERT OR REPLACE INTO attempts (attempt_id, task_id, state, pid, process_group, "
        "process_start, boot_id, started_at, updated_at, command_start) VALUES (?, ?, 'running', "
        "?, ?, ?, ?, ?, ?, ?)");
    statement.bind(1, attempt.attempt_id);
    statement.bind(2, attempt.task_id);
    statement.bind(3, attempt.pid);
    statement.bind(4, attempt.process_group);
    statement.bind(5, static_cast<int64_t>(attempt.process_start));
    statement.bind(6, attempt.boot_id);
    statement.bind(7, attempt.started_at);
    statement.bind(8, core::utc_now());
    statement.bind(9, static_cast<int64_t>(attempt.command_start));
    statement.exec();
    live_[attempt.attempt_id] = attempt;
    const protocol::AttemptRef ref{attempt.task_id, attempt.attempt_id};
    insert(frame_for(ref, protocol::started_message_id(attempt.attempt_id),
                     protocol::TaskStarted{ref, started}),
           FrameKind::kStarted, std::nullopt, 0, 0, 0);
  });
}

bool Outbox::make_room(const protocol::AttemptRef& attempt, uint64_t needed) {
  forget_fresh();  // rows change under the cache
  // Only frames clearly larger than the gap that replaces them (a gap's JSON
  // is a few hundred bytes): every conversion frees space, so this ends.
  // Only frames never sent: one that was sent may already be at the hub, and
  // then the bytes counted as dropped would not match the gaps it records.
  // (Sent, unacked frames are bounded by the send window.)
  auto oldest = store_->statement(
      "SELECT id, message_id, stream, seq, byte_offset, length, length(CAST(payload AS BLOB)) FROM "
      "frames "
      "WHERE attempt_id = ? AND kind = 'output' AND id > ? AND length(CAST(payload AS BLOB)) > "
      "2048 "
      "ORDER BY id LIMIT 32");
  while (bytes_ + needed > output_limit()) {
    oldest.reset();
    oldest.bind(1, attempt.attempt_id);
    oldest.bind(2, sent_through_id_);
    struct Victim {
      int64_t id;
      std::string message_id;
      StreamName stream;
      uint64_t seq, offset, length, size;
    };
    std::vector<Victim> victims;
    while (oldest.executeStep()) {
      victims.push_back({oldest.getColumn(0).getInt64(), oldest.getColumn(1).getString(),
                         stream_of(oldest.getColumn(2)).value_or(StreamName::kStdout),
                         static_cast<uint64_t>(oldest.getColumn(3).getInt64()),
                         static_cast<uint64_t>(oldest.getColumn(4).getInt64()),
                         static_cast<uint64_t>(oldest.getColumn(5).getInt64()),
                         static_cast<uint64_t>(oldest.getColumn(6).getInt64())});
    }
    if (victims.empty()) return false;
    auto convert = store_->statement("UPDATE frames SET kind = 'gap', payload = ? WHERE id = ?");
    for (const auto& victim : victims) {
      if (bytes_ + needed <= output_limit()) break;
      // Same seq, same byte range, no data: the hub records where and how much.
      const std::string gap = protocol::encode_frame(
          frame_for(attempt, victim.message_id,
                    protocol::TaskOutputGap{attempt, victim.stream, victim.seq, victim.offset,
                                            victim.length}));
      convert.reset();
      convert.bind(1, gap);
      convert.bind(2, victim.id);
      convert.exec();
      bytes_ -= victim.size - gap.size();
      auto& record = live_[attempt.attempt_id];
      progress(record, victim.stream).dropped += victim.length;
      dropped_total_ += victim.length;
      dirty_.insert(attempt.attempt_id);
    }
  }
  return true;
}

void Outbox::append_output(const protocol::AttemptRef& attempt, protocol::OutputChunk chunk,
                           const protocol::Sha256& digest_after) {
  store_->write([this, attempt, chunk = std::move(chunk),
                 digest_state = digest_after.state()]() mutable {
    auto& record = live_[attempt.attempt_id];
    record.task_id = attempt.task_id;
    record.attempt_id = attempt.attempt_id;
    auto& stream = progress(record, chunk.stream);
    stream.bytes = chunk.offset + chunk.data.size();
    stream.digest_state = std::move(digest_state);
    dirty_.insert(attempt.attempt_id);

    if (stream.abandoned) {
      // Nothing of this stream can reach the hub any more: counted, not kept.
      stream.dropped += chunk.data.size();
      stream.undelivered += chunk.data.size();
      dropped_total_ += chunk.data.size();
      return;
    }
    const std::string message_id =
        protocol::output_message_id(attempt.attempt_id, chunk.stream, chunk.seq);
    auto frame = frame_for(attempt, message_id, protocol::TaskOutput{attempt, chunk});
    // Worst-case size of the JSON (escaping can grow text); exact size is
    // known only after encoding, and the check only needs to be conservative.
    const uint64_t estimate = chunk.data.size() * 2 + 512;
    const bool must_drop = options_.policy == OutboxFullPolicy::kDropOldest && gaps_allowed_ &&
                           bytes_ + estimate > output_limit();
    if (must_drop && record.out.dropped + record.err.dropped == 0) {
      // Said once per attempt; the final reports the exact count per stream.
      core::log_warning("outbox", "outbox full (" + std::to_string(bytes_) +
                                      " bytes): dropping the oldest unsent output of " +
                                      attempt.attempt_id + " (outbox_full_policy = drop-oldest)");
    }
    if (must_drop && !make_room(attempt, estimate)) {
      // Nothing older of this attempt to drop: this chunk itself becomes a gap.
      stream.dropped += chunk.data.size();
      dropped_total_ += chunk.data.size();
      insert(frame_for(attempt, message_id,
                       protocol::TaskOutputGap{attempt, chunk.stream, chunk.seq, chunk.offset,
                                               chunk.data.size()}),
             FrameKind::kGap, chunk.stream, chunk.seq, chunk.offset, chunk.data.size());
      return;
    }
    insert(frame, FrameKind::kOutput, chunk.stream, chunk.seq, chunk.offset, chunk.data.size());
  });
}

uint64_t Outbox::dropped_bytes(const std::string& attempt_id, StreamName stream) const {
  auto it = live_.find(attempt_id);
  if (it == live_.end()) return 0;
  return stream == StreamName::kStdout ? it->second.out.dropped : it->second.err.dropped;
}

void Outbox::append_final(const protocol::AttemptRef& attempt, protocol::FinalReport report) {
  store_->write([this, attempt, report = std::move(report)]() mutable {
    if (discarded(attempt.attempt_id)) return;
    if (auto it = live_.find(attempt.attempt_id); it != live_.end()) {
      for (StreamName name : {StreamName::kStdout, StreamName::kStderr}) {
        const StreamProgress& counted = progress(it->second, name);
        auto& summary = report.summary(name);
        summary.dropped_bytes = counted.dropped;
        summary.undelivered_bytes = counted.undelivered;
        if (counted.undelivered > 0 && !counted.abandoned_because.empty()) {
          report.error += (report.error.empty() ? "" : "; ") + counted.abandoned_because;
        }
      }
    }
    flush_progress();
    auto finished = store_->statement(
        "UPDATE attempts SET state = 'finished', updated_at = ? WHERE attempt_id = ?");
    finished.bind(1, core::utc_now());
    finished.bind(2, attempt.attempt_id);
    finished.exec();
    live_.erase(attempt.attempt_id);
    insert(frame_for(attempt, protocol::final_message_id(attempt.attempt_id),
                     protocol::TaskFinal{attempt, std::move(report)}),
           FrameKind::kFinal, std::nullopt, 0, 0, 0);
  });
}

void Outbox::flush_progress() {
  if (dirty_.empty()) return;
  auto update = store_->statement(
      "UPDATE attempts SET stdout_bytes = ?, stderr_bytes = ?, stdout_dropped_bytes = ?, "
      "stderr_dropped_bytes = ?, stdout_sha256_state = ?, stderr_sha256_state = ?, updated_at = ?, "
      "stdout_undelivered_bytes = ?, stderr_undelivered_bytes = ? WHERE attempt_id = ?");
  const std::string now = core::utc_now();
  for (const auto& attempt_id : dirty_) {
    auto it = live_.find(attempt_id);
    if (it == live_.end()) continue;
    const auto& record = it->second;
    update.reset();
    update.bind(1, static_cast<int64_t>(record.out.bytes));
    update.bind(2, static_cast<int64_t>(record.err.bytes));
    update.bind(3, static_cast<int64_t>(record.out.dropped));
    update.bind(4, static_cast<int64_t>(record.err.dropped));
    update.bind(5, record.out.digest_state.data(),
                static_cast<int>(record.out.digest_state.size()));
    update.bind(6, record.err.digest_state.data(),
                static_cast<int>(record.err.digest_state.size()));
    update.bind(7, now);
    update.bind(8, static_cast<int64_t>(record.out.undelivered));
    update.bind(9, static_cast<int64_t>(record.err.undelivered));
    update.bind(10, attempt_id);
    update.exec();
  }
  dirty_.clear();
}

void Outbox::remember_fresh(StoredFrame frame) {
  // Only a contiguous run of ids, within the byte budget: anything else is
  // read from the database, which is always right.
  const bool follows = fresh_.empty() || fresh_.back().id + 1 == frame.id;
  if (!follows || fresh_bytes_ + frame.payload.size() > kFreshCacheBytes) {
    forget_fresh();
    fresh_overflowed_ = true;
    return;
  }
  if (fresh_overflowed_) return;  // until the sender has caught up
  fresh_bytes_ += frame.payload.size();
  fresh_.push_back(std::move(frame));
}

void Outbox::forget_fresh() {
  fresh_.clear();
  fresh_bytes_ = 0;
}

std::vector<StoredFrame> Outbox::committed_after(int64_t after_id, size_t max_bytes) {
  // Frames up to after_id are the sender's past.
  while (!fresh_.empty() && fresh_.front().id <= after_id) {
    fresh_bytes_ -= fresh_.front().payload.size();
    fresh_.pop_front();
  }
  if (fresh_.empty() && fresh_overflowed_ && after_id >= committed_max_id_) {
    fresh_overflowed_ = false;  // caught up: cache again from the next insert
  }
  if (!fresh_.empty() && fresh_.front().id == after_id + 1) {
    // The common case: the sender wants what was just stored. It is handed
    // over from memory instead of being read back from SQLite.
    std::vector<StoredFrame> frames;
    size_t total = 0;
    while (!fresh_.empty() && fresh_.front().id <= committed_max_id_ && total < max_bytes &&
           frames.size() < 256) {
      total += fresh_.front().payload.size();
      fresh_bytes_ -= fresh_.front().payload.size();
      frames.push_back(std::move(fresh_.front()));
      fresh_.pop_front();
    }
    return frames;
  }
  std::vector<StoredFrame> frames;
  const bool read = read_guarded("reading frames to send", [&] {
    auto query = store_->statement(
        "SELECT id, message_id, task_id, attempt_id, kind, stream, seq, payload FROM frames "
        "WHERE id > ? AND id <= ? ORDER BY id LIMIT 256");
    query.bind(1, after_id);
    query.bind(2, committed_max_id_);
    size_t total = 0;
    while (total < max_bytes && query.executeStep()) {
      frames.push_back(read_frame(query));
      total += frames.back().payload.size();
    }
  });
  if (!read) frames.clear();
  return frames;
}

bool Outbox::read_guarded(const char* what, const std::function<void()>& read) {
  try {
    read();
    return true;
  } catch (const SQLite::Exception& e) {
    if (!core::is_busy(e)) fail_stop(store_->path() + ": " + what + ": " + e.what());
    core::log_debug("outbox", std::string(what) + ": the file is locked by another process");
    // Whoever waits for a change reads again a little later.
    if (!read_retry_.active()) read_retry_.start(100, [this] { changed_.notify_all(); });
    return false;
  }
}

std::optional<int64_t> Outbox::frame_id(const std::string& attempt_id, StreamName stream,
                                        uint64_t seq) {
  std::optional<int64_t> id;
  (void)read_guarded("finding a frame", [&] {
    auto query = store_->statement(
        "SELECT MIN(id) FROM frames WHERE attempt_id = ? AND stream = ? AND seq >= ?");
    query.bind(1, attempt_id);
    query.bind(2, std::string(protocol::to_string(stream)));
    query.bind(3, static_cast<int64_t>(seq));
    if (query.executeStep() && !query.getColumn(0).isNull()) id = query.getColumn(0).getInt64();
  });
  return id;
}

void Outbox::mark_sent(int64_t first_id, int64_t last_id) {
  // Durable at once: how far sending got (one small row), which drop-oldest
  // relies on. The per-frame send time and count (frame_sends) are for
  // operators: they are written a second later, for the frames still waiting
  // for an ack. Almost every frame is acked and deleted within milliseconds,
  // so almost none needs that row.
  if (last_id > sent_through_id_) {
    sent_through_id_ = last_id;
    store_->write([this, last_id] {
      auto record = store_->statement("UPDATE send_progress SET sent_through_id = ?");
      record.bind(1, last_id);
      record.exec();
      after_write(false);
    });
  }
  pending_marks_.push_back({first_id, last_id, core::utc_now()});
  if (!marks_timer_.active()) {
    marks_timer_.start(kSendMarkDelayMs, [this] { flush_send_marks(); });
  }
}

void Outbox::flush_send_marks() {
  store_->write([this]() mutable {
    if (pending_marks_.empty()) return;
    // Only frames still stored: the others were acked (and their rows gone).
    auto update = store_->statement(
        "INSERT INTO frame_sends (frame_id, last_sent_at, send_count) "
        "SELECT id, ?1, 1 FROM frames WHERE id BETWEEN ?2 AND ?3 "
        "ON CONFLICT (frame_id) DO UPDATE SET last_sent_at = ?1, send_count = send_count + 1");
    for (const auto& mark : pending_marks_) {
      update.reset();
      update.bind(1, mark.at);
      update.bind(2, mark.first_id);
      update.bind(3, mark.last_id);
      update.exec();
    }
    pending_marks_.clear();
    after_write(false);
  });
}

bool Outbox::account_removed(SQLite::Statement& remove,
                             const std::function<void(SQLite::Statement&)>& each_row) {
  bool freed = false;
  while (remove.executeStep()) {
    bytes_ -= static_cast<uint64_t>(remove.getColumn(0).getInt64());
    rows_ -= 1;
    freed = true;
    if (each_row) each_row(remove);
  }
  return freed;
}

void Outbox::ack_output(const std::string& attempt_id, StreamName stream, uint64_t through_seq) {
  store_->write([this, attempt_id, stream, through_seq]() mutable {
    auto remove = store_->statement(
        "DELETE FROM frames WHERE attempt_id = ? AND stream = ? AND seq <= ? RETURNING "
        "length(CAST(payload AS BLOB))");
    remove.bind(1, attempt_id);
    remove.bind(2, std::string(protocol::to_string(stream)));
    remove.bind(3, static_cast<int64_t>(through_seq));
    after_write(account_removed(remove));
  });
}

void Outbox::ack_message(const std::string& message_id) {
  store_->write([this, message_id]() mutable {
    forget_fresh();  // rows change under the cache
    auto remove = store_->statement(
        "DELETE FROM frames WHERE message_id = ? RETURNING length(CAST(payload AS BLOB)), kind, "
        "attempt_id");
    remove.bind(1, message_id);
    std::string finished_attempt;
    const bool freed = account_removed(remove, [&](SQLite::Statement& row) {
      if (row.getColumn(1).getString() == "final") finished_attempt = row.getColumn(2).getString();
    });
    if (!finished_attempt.empty()) {
      auto forget = store_->statement("DELETE FROM attempts WHERE attempt_id = ?");
      forget.bind(1, finished_attempt);
      forget.exec();
    }
    after_write(freed);
  });
}

void Outbox::discard_attempt(const std::string& attempt_id) {
  store_->write([this, attempt_id]() mutable {
    forget_fresh();  // rows change under the cache
    discarded_.insert(attempt_id);
    auto remove = store_->statement(
        "DELETE FROM frames WHERE attempt_id = ? RETURNING length(CAST(payload AS BLOB))");
    remove.bind(1, attempt_id);
    const bool freed = account_removed(remove);
    auto forget = store_->statement("DELETE FROM attempts WHERE attempt_id = ?");
    forget.bind(1, attempt_id);
    forget.exec();
    live_.erase(attempt_id);
    dirty_.erase(attempt_id);
    after_write(freed);
  });
}

void Outbox::resume_from(const std::string& attempt_id, StreamName stream, uint64_t next_seq) {
  forget_fresh();  // rows change under the cache
  if (next_seq > 1) ack_output(attempt_id, stream, next_seq - 1);
}

std::optional<uint64_t> Outbox::first_held_seq(const std::string& attempt_id, StreamName stream) {
  std::optional<uint64_t> first;
  (void)read_guarded("finding the first held frame", [&] {
    auto query = store_->statement(
        "SELECT MIN(seq) FROM frames WHERE attempt_id = ? AND stream = ? AND kind IN ('output', "
        "'gap')");
    query.bind(1, attempt_id);
    query.bind(2, std::string(protocol::to_string(stream)));
    if (query.executeStep() && !query.getColumn(0).isNull()) {
      first = static_cast<uint64_t>(query.getColumn(0).getInt64());
    }
  });
  return first;
}

void Outbox::abandon_stream(const std::string& attempt_id, StreamName stream, uint64_t from_seq,
                            std::optional<uint64_t> from_offset, std::string why) {
  store_->write([this, attempt_id, stream, from_seq, from_offset, why = std::move(why)]() mutable {
    forget_fresh();  // rows change under the cache
    // The frames that can no longer go: their output bytes join the dropped
    // ones (a gap's bytes were counted when it was made).
    auto remove = store_->statement(
        "DELETE FROM frames WHERE attempt_id = ? AND stream = ? AND seq >= ? RETURNING "
        "length(CAST(payload AS BLOB)), kind, length, byte_offset");
    remove.bind(1, attempt_id);
    remove.bind(2, std::string(protocol::to_string(stream)));
    remove.bind(3, static_cast<int64_t>(from_seq));
    uint64_t output_bytes = 0;
    std::optional<uint64_t> first_offset;
    const bool freed = account_removed(remove, [&](SQLite::Statement& row) {
      const uint64_t length = static_cast<uint64_t>(row.getColumn(2).getInt64());
      const uint64_t offset = static_cast<uint64_t>(row.getColumn(3).getInt64());
      if (row.getColumn(1).getString() == "output") output_bytes += length;
      if (!first_offset || offset < *first_offset) first_offset = offset;
    });
    const uint64_t start = from_offset ? *from_offset : first_offset.value_or(UINT64_MAX);
    if (auto live = live_.find(attempt_id); live != live_.end()) {
      StreamProgress& counted = progress(live->second, stream);
      counted.abandoned = true;
      counted.abandoned_because = why;
      counted.dropped += output_bytes;
      dropped_total_ += output_bytes;
      if (start <= counted.bytes) counted.undelivered = counted.bytes - start;
      dirty_.insert(attempt_id);
    } else {
      rewrite_final(attempt_id, stream, start, output_bytes, why);
    }
    after_write(freed);
  });
}

void Outbox::rewrite_final(const std::string& attempt_id, StreamName stream, uint64_t from_offset,
                           uint64_t newly_dropped, const std::string& why) {
  auto query = store_->statement("SELECT id, payload FROM frames WHERE message_id = ?");
  query.bind(1, protocol::final_message_id(attempt_id));
  if (!query.executeStep()) return;  // no final yet, or acked: nothing to say
  const int64_t id = query.getColumn(0).getInt64();
  auto frame = protocol::decode_frame(query.getColumn(1).getString());
  query.reset();
  if (!frame || !std::holds_alternative<protocol::TaskFinal>(frame->payload)) return;
  auto& final_frame = std::get<protocol::TaskFinal>(frame->payload);
  auto& summary = final_frame.report.summary(stream);
  summary.dropped_bytes = std::min(summary.bytes, summary.dropped_bytes + newly_dropped);
  if (from_offset <= summary.bytes) summary.undelivered_bytes = summary.bytes - from_offset;
  summary.undelivered_bytes = std::min(summary.undelivered_bytes, summary.dropped_bytes);
  auto& error = final_frame.report.error;
  if (error.find(why) == std::string::npos) error += (error.empty() ? "" : "; ") + why;
  frame->sent_at.clear();
  const std::string payload = protocol::encode_frame(*frame);
  auto update = store_->statement("UPDATE frames SET payload = ? WHERE id = ?");
  update.bind(1, payload);
  update.bind(2, id);
  update.exec();
}

std::optional<protocol::AgentHello> Outbox::hello(const std::string& version) {
  protocol::AgentHello hello;
  hello.version = version;
  hello.capabilities = protocol::agent_capabilities();
  const bool read = read_guarded("reading what the outbox holds", [&] {
    {
      auto running =
          store_->statement("SELECT task_id, attempt_id FROM attempts WHERE state = 'running'");
      while (running.executeStep()) {
        hello.running.push_back(
            {running.getColumn(0).getString(), running.getColumn(1).getString()});
      }
    }
    {
      auto ranges = store_->statement(
          "SELECT task_id, attempt_id, stream, MIN(seq), MAX(seq) FROM frames "
          "WHERE kind IN ('output', 'gap') GROUP BY attempt_id, stream");
      while (ranges.executeStep()) {
        protocol::OutboxRange range;
        range.attempt = {ranges.getColumn(0).getString(), ranges.getColumn(1).getString()};
        range.stream = stream_of(ranges.getColumn(2)).value_or(StreamName::kStdout);
        range.first_seq = static_cast<uint64_t>(ranges.getColumn(3).getInt64());
        range.last_seq = static_cast<uint64_t>(ranges.getColumn(4).getInt64());
        hello.outbox.push_back(std::move(range));
      }
    }
    {
      auto finals =
          store_->statement("SELECT task_id, attempt_id FROM frames WHERE kind = 'final'");
      while (finals.executeStep()) {
        hello.unacked_finals.push_back(
            {finals.getColumn(0).getString(), finals.getColumn(1).getString()});
      }
    }
  });
  // A hello that left something out would tell the hub it is gone.
  if (!read) return std::nullopt;
  hello.outbox_rows = rows_;
  hello.outbox_bytes = bytes_;
  return hello;
}

std::vector<StoredFrame> Outbox::finals() {
  std::vector<StoredFrame> frames;
  const bool read = read_guarded("reading finals", [&] {
    auto query = store_->statement(
        "SELECT id, message_id, task_id, attempt_id, kind, stream, seq, payload FROM frames "
        "WHERE kind = 'final' AND id <= ? ORDER BY id");
    query.bind(1, committed_max_id_);
    while (query.executeStep())
      frames.push_back(read_frame(query));
  });
  if (!read) frames.clear();
  return frames;
}

std::vector<AttemptRecord> Outbox::running_attempts() {
  auto query = store_->statement(
      "SELECT task_id, attempt_id, pid, process_group, process_start, boot_id, started_at, "
      "stdout_bytes, stderr_bytes, stdout_dropped_bytes, stderr_dropped_bytes, "
      "stdout_sha256_state, stderr_sha256_state, stdout_undelivered_bytes, "
      "stderr_undelivered_bytes, command_start FROM attempts WHERE state = 'running'");
  std::vector<AttemptRecord> attempts;
  while (query.executeStep()) {
    AttemptRecord record;
    record.task_id = query.getColumn(0).getString();
    record.attempt_id = query.getColumn(1).getString();
    record.pid = query.getColumn(2).getInt();
    record.process_group = query.getColumn(3).getInt();
    record.process_start = static_cast<uint64_t>(query.getColumn(4).getInt64());
    record.boot_id = query.getColumn(5).isNull() ? "" : query.getColumn(5).getString();
    record.started_at = query.getColumn(6).getString();
    record.out.bytes = static_cast<uint64_t>(query.getColumn(7).getInt64());
    record.err.bytes = static_cast<uint64_t>(query.getColumn(8).getInt64());
    record.out.dropped = static_cast<uint64_t>(query.getColumn(9).getInt64());
    record.err.dropped = static_cast<uint64_t>(query.getColumn(10).getInt64());
    for (int column : {11, 12}) {
      const auto& blob = query.getColumn(column);
      std::string state = blob.isNull() ? std::string()
                                        : std::string(static_cast<const char*>(blob.getBlob()),
                                                      static_cast<size_t>(blob.getBytes()));
      (column == 11 ? record.out : record.err).digest_state = std::move(state);
    }
    record.out.undelivered = static_cast<uint64_t>(query.getColumn(13).getInt64());
    record.err.undelivered = static_cast<uint64_t>(query.getColumn(14).getInt64());
    record.command_start =
        query.getColumn(15).isNull() ? 0 : static_cast<uint64_t>(query.getColumn(15).getInt64());
    attempts.push_back(std::move(record));
  }
  for (const auto& attempt : attempts)
    live_[attempt.attempt_id] = attempt;
  return attempts;
}

std::string Outbox::oldest_created_at() {
  // The lowest id is the oldest frame: the primary key makes this one probe.
  std::string oldest;
  (void)read_guarded("reading the oldest frame", [&] {
    auto query = store_->statement("SELECT created_at FROM frames ORDER BY id LIMIT 1");
    if (query.executeStep()) oldest = query.getColumn(0).getString();
  });
  return oldest;
}

std::vector<AttemptRecord> Outbox::live_attempts() const {
  std::vector<AttemptRecord> attempts;
  attempts.reserve(live_.size());
  for (const auto& [id, record] : live_)
    attempts.push_back(record);
  return attempts;
}

}  // namespace tether::agent
