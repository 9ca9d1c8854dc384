#include "agent/frame_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <stdexcept>

#include "core/wall_clock.hpp"

namespace tether::agent {

namespace {

using core::ScopedStatement;
using protocol::StreamName;

// Stored frames kept in memory for the sender: what is committed and not yet
// sent, which is little while the channel keeps up.
constexpr size_t kFreshCacheBytes = 4 << 20;

// At most this many frames per read for the sender.
constexpr size_t kFramesPerRead = 256;

// An outbox that held this much shrinks its file once it is empty again.
constexpr uint64_t kReclaimAfterBytes = 8 << 20;

// Only frames clearly larger than the gap that replaces them (a gap's JSON
// is a few hundred bytes) are turned into gaps: every conversion frees space.
constexpr int64_t kSmallestDroppedPayload = 2048;

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

// Row: SQLite::Statement or core::ScopedStatement.
template <class Row>
uint64_t column_u64(Row& row, int column) {
  return static_cast<uint64_t>(row.getColumn(column).getInt64());
}

// Columns: id, message_id, task_id, attempt_id, kind, stream, seq, payload.
StoredFrame read_frame(SQLite::Statement& row) {
  StoredFrame frame;
  frame.id = row.getColumn(0).getInt64();
  frame.message_id = row.getColumn(1).getString();
  frame.task_id = row.getColumn(2).getString();
  frame.attempt_id = row.getColumn(3).getString();
  frame.kind = parse_kind(row.getColumn(4).getString());
  frame.stream = stream_of(row.getColumn(5)).value_or(StreamName::kStdout);
  frame.seq = row.getColumn(6).isNull() ? 0 : column_u64(row, 6);
  frame.payload = row.getColumn(7).getString();
  return frame;
}

protocol::AttemptRef attempt_of(const protocol::FramePayload& payload) {
  protocol::AttemptRef ref;
  std::visit(
      [&](const auto& body) {
        if constexpr (requires { body.attempt; }) ref = body.attempt;
      },
      payload);
  return ref;
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

FrameStore::FrameStore(core::SqliteStore& store, std::string agent_id)
    : store_(store), agent_id_(std::move(agent_id)) {}

void FrameStore::load() {
  SQLite::Statement totals(store_.database(),
                           "SELECT COUNT(*), COALESCE(SUM(length(CAST(payload AS BLOB))), 0), "
                           "COALESCE(MAX(id), 0) FROM frames");
  totals.executeStep();
  rows_ = column_u64(totals, 0);
  bytes_ = column_u64(totals, 1);
  committed_max_id_ = totals.getColumn(2).getInt64();
  high_water_bytes_ = std::max(high_water_bytes_, bytes_);
}

protocol::Frame FrameStore::frame(std::string message_id, protocol::FramePayload payload) const {
  protocol::Frame frame;
  frame.message_id = std::move(message_id);
  frame.agent_id = agent_id_;
  frame.payload = std::move(payload);
  return frame;
}

uint64_t FrameStore::insert(const std::string& message_id, protocol::FramePayload body,
                            FrameKind kind, std::optional<OutputSpan> span) {
  const protocol::AttemptRef attempt = attempt_of(body);
  std::string payload = protocol::encode_frame(frame(message_id, std::move(body)));
  auto statement = store_.statement(
      "INSERT INTO frames (message_id, task_id, attempt_id, kind, stream, seq, byte_offset, "
      "length, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  statement.bind(1, message_id);
  statement.bind(2, attempt.task_id);
  statement.bind(3, attempt.attempt_id);
  statement.bind(4, std::string(to_string(kind)));
  if (span) {
    statement.bind(5, std::string(protocol::to_string(span->stream)));
    statement.bind(6, static_cast<int64_t>(span->seq));
    statement.bind(7, static_cast<int64_t>(span->offset));
    statement.bind(8, static_cast<int64_t>(span->length));
  }  // otherwise NULL: started and final frames belong to no stream
  statement.bindNoCopy(9, payload);
  statement.bind(10, core::utc_now());
  try {
    statement.exec();
  } catch (const SQLite::Exception& e) {
    // The same message again (a replayed final after a restart): nothing to add.
    if (store_.database().getErrorCode() == SQLITE_CONSTRAINT) return 0;
    // The write boundary (SqliteStore::write) stops the agent.
    throw std::runtime_error("storing a frame failed: " + std::string(e.what()));
  }
  const uint64_t added = payload.size();
  bytes_ += added;
  high_water_bytes_ = std::max(high_water_bytes_, bytes_);
  rows_ += 1;
  newest_id_ = store_.database().getLastInsertRowid();
  // The payload moves on to the sender; SQLite has its own copy by now.
  const OutputSpan where = span.value_or(OutputSpan{});
  remember_fresh({newest_id_, message_id, attempt.task_id, attempt.attempt_id, kind, where.stream,
                  where.seq, std::move(payload)});
  return added;
}

bool FrameStore::account_removed(core::ScopedStatement& rows, core::ScopedStatement& remove,
                                 const std::function<void(core::ScopedStatement&)>& each_row) {
  // Counted first, then deleted, in one transaction. Not DELETE ... RETURNING:
  // SQLite gathers RETURNING rows in a temporary b-tree it opens for every
  // statement, a seventh of the agent's time with 200 chatty tasks.
  bool freed = false;
  while (rows.executeStep()) {
    bytes_ -= column_u64(rows, 0);
    rows_ -= 1;
    freed = true;
    if (each_row) each_row(rows);
  }
  rows.reset();
  if (freed) remove.exec();
  return freed;
}

bool FrameStore::remove_output_through(const std::string& attempt_id, StreamName stream,
                                       uint64_t through_seq) {
  return remove_where(
      "SELECT length(CAST(payload AS BLOB)) FROM frames WHERE attempt_id = ? AND stream = ? AND "
      "seq <= ?",
      "DELETE FROM frames WHERE attempt_id = ? AND stream = ? AND seq <= ?", {}, attempt_id,
      std::string(protocol::to_string(stream)), through_seq);
}

bool FrameStore::remove_message(const std::string& message_id, std::string* final_of) {
  forget_fresh();  // rows change under the copy
  const auto note_final = [&](ScopedStatement& row) {
    if (final_of && row.getColumn(1).getString() == "final")
      *final_of = row.getColumn(2).getString();
  };
  return remove_where(
      "SELECT length(CAST(payload AS BLOB)), kind, attempt_id FROM frames WHERE message_id = ?",
      "DELETE FROM frames WHERE message_id = ?", note_final, message_id);
}

bool FrameStore::remove_attempt(const std::string& attempt_id) {
  forget_fresh();  // rows change under the copy
  return remove_where("SELECT length(CAST(payload AS BLOB)) FROM frames WHERE attempt_id = ?",
                      "DELETE FROM frames WHERE attempt_id = ?", {}, attempt_id);
}

FrameStore::RemovedStream FrameStore::remove_stream_from(const std::string& attempt_id,
                                                         StreamName stream, uint64_t from_seq) {
  forget_fresh();  // rows change under the copy
  RemovedStream removed;
  const auto count_output = [&](ScopedStatement& row) {
    const uint64_t length = column_u64(row, 2);
    const uint64_t offset = column_u64(row, 3);
    // A gap's bytes were counted as dropped when it was made.
    if (row.getColumn(1).getString() == "output") removed.output_bytes += length;
    if (!removed.first_offset || offset < *removed.first_offset) removed.first_offset = offset;
  };
  removed.freed = remove_where(
      "SELECT length(CAST(payload AS BLOB)), kind, length, byte_offset FROM frames WHERE "
      "attempt_id = ? AND stream = ? AND seq >= ?",
      "DELETE FROM frames WHERE attempt_id = ? AND stream = ? AND seq >= ?", count_output,
      attempt_id, std::string(protocol::to_string(stream)), from_seq);
  return removed;
}

std::vector<FrameStore::Unsent> FrameStore::oldest_unsent_output(const std::string& attempt_id,
                                                                 int64_t after_id) {
  forget_fresh();  // the caller is about to change rows under the copy
  auto oldest = store_.statement(
      "SELECT id, message_id, stream, seq, byte_offset, length, length(CAST(payload AS BLOB)) "
      "FROM frames WHERE attempt_id = ? AND kind = 'output' AND id > ? "
      "AND length(CAST(payload AS BLOB)) > ? ORDER BY id LIMIT 32");
  oldest.bind(1, attempt_id);
  oldest.bind(2, after_id);
  oldest.bind(3, kSmallestDroppedPayload);
  std::vector<Unsent> frames;
  while (oldest.executeStep()) {
    frames.push_back(
        {oldest.getColumn(0).getInt64(), oldest.getColumn(1).getString(),
         OutputSpan{stream_of(oldest.getColumn(2)).value_or(StreamName::kStdout),
                    column_u64(oldest, 3), column_u64(oldest, 4), column_u64(oldest, 5)},
         column_u64(oldest, 6)});
  }
  return frames;
}

uint64_t FrameStore::convert_to_gap(const protocol::AttemptRef& attempt, const Unsent& victim) {
  const std::string gap = protocol::encode_frame(
      frame(victim.message_id, protocol::TaskOutputGap{attempt, victim.span.stream, victim.span.seq,
                                                       victim.span.offset, victim.span.length}));
  auto convert = store_.statement("UPDATE frames SET kind = 'gap', payload = ? WHERE id = ?");
  convert.bind(1, gap);
  convert.bind(2, victim.id);
  convert.exec();
  const uint64_t freed = victim.size - gap.size();
  bytes_ -= freed;
  return freed;
}

bool FrameStore::rewrite_final(const std::string& attempt_id,
                               const std::function<void(protocol::FinalReport&)>& edit) {
  auto query = store_.statement("SELECT id, payload FROM frames WHERE message_id = ?");
  query.bind(1, protocol::final_message_id(attempt_id));
  if (!query.executeStep()) return false;  // no final yet, or acked
  const int64_t id = query.getColumn(0).getInt64();
  auto stored = protocol::decode_frame(query.getColumn(1).getString());
  query.reset();
  if (!stored || !std::holds_alternative<protocol::TaskFinal>(stored->payload)) return false;
  edit(std::get<protocol::TaskFinal>(stored->payload).report);
  stored->sent_at.clear();
  const std::string payload = protocol::encode_frame(*stored);
  auto update = store_.statement("UPDATE frames SET payload = ? WHERE id = ?");
  update.bind(1, payload);
  update.bind(2, id);
  update.exec();
  return true;
}

void FrameStore::remember_fresh(StoredFrame frame) {
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

void FrameStore::forget_fresh() {
  fresh_.clear();
  fresh_bytes_ = 0;
}

std::vector<StoredFrame> FrameStore::take_fresh(size_t max_bytes) {
  std::vector<StoredFrame> frames;
  size_t total = 0;
  while (!fresh_.empty() && fresh_.front().id <= committed_max_id_ && total < max_bytes &&
         frames.size() < kFramesPerRead) {
    total += fresh_.front().payload.size();
    fresh_bytes_ -= fresh_.front().payload.size();
    frames.push_back(std::move(fresh_.front()));
    fresh_.pop_front();
  }
  return frames;
}

std::vector<StoredFrame> FrameStore::committed_after(int64_t after_id, size_t max_bytes) {
  // Frames up to after_id are the sender's past.
  while (!fresh_.empty() && fresh_.front().id <= after_id) {
    fresh_bytes_ -= fresh_.front().payload.size();
    fresh_.pop_front();
  }
  if (fresh_.empty() && fresh_overflowed_ && after_id >= committed_max_id_) {
    fresh_overflowed_ = false;  // caught up: keep copies again from the next insert
  }
  // The common case: the sender wants what was just stored.
  if (!fresh_.empty() && fresh_.front().id == after_id + 1) return take_fresh(max_bytes);
  std::vector<StoredFrame> frames;
  const bool read = store_.try_read("reading frames to send", [&] {
    auto query = store_.statement(
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

std::optional<int64_t> FrameStore::frame_id(const std::string& attempt_id, StreamName stream,
                                            uint64_t seq) {
  std::optional<int64_t> id;
  (void)store_.try_read("finding a frame", [&] {
    auto query = store_.statement(
        "SELECT MIN(id) FROM frames WHERE attempt_id = ? AND stream = ? AND seq >= ?");
    query.bind(1, attempt_id);
    query.bind(2, std::string(protocol::to_string(stream)));
    query.bind(3, static_cast<int64_t>(seq));
    if (query.executeStep() && !query.getColumn(0).isNull()) id = query.getColumn(0).getInt64();
  });
  return id;
}

std::optional<uint64_t> FrameStore::first_held_seq(const std::string& attempt_id,
                                                   StreamName stream) {
  std::optional<uint64_t> first;
  (void)store_.try_read("finding the first held frame", [&] {
    auto query = store_.statement(
        "SELECT MIN(seq) FROM frames WHERE attempt_id = ? AND stream = ? AND kind IN ('output', "
        "'gap')");
    query.bind(1, attempt_id);
    query.bind(2, std::string(protocol::to_string(stream)));
    if (query.executeStep() && !query.getColumn(0).isNull()) first = column_u64(query, 0);
  });
  return first;
}

std::vector<StoredFrame> FrameStore::finals() {
  std::vector<StoredFrame> frames;
  const bool read = store_.try_read("reading finals", [&] {
    auto query = store_.statement(
        "SELECT id, message_id, task_id, attempt_id, kind, stream, seq, payload FROM frames "
        "WHERE kind = 'final' AND id <= ? ORDER BY id");
    query.bind(1, committed_max_id_);
    while (query.executeStep())
      frames.push_back(read_frame(query));
  });
  if (!read) frames.clear();
  return frames;
}

bool FrameStore::describe(std::vector<protocol::OutboxRange>& ranges,
                          std::vector<protocol::AttemptRef>& finals) {
  return store_.try_read("reading what the outbox holds", [&] {
    {
      auto query = store_.statement(
          "SELECT task_id, attempt_id, stream, MIN(seq), MAX(seq) FROM frames "
          "WHERE kind IN ('output', 'gap') GROUP BY attempt_id, stream");
      while (query.executeStep()) {
        protocol::OutboxRange range;
        range.attempt = {query.getColumn(0).getString(), query.getColumn(1).getString()};
        range.stream = stream_of(query.getColumn(2)).value_or(StreamName::kStdout);
        range.first_seq = column_u64(query, 3);
        range.last_seq = column_u64(query, 4);
        ranges.push_back(std::move(range));
      }
    }
    auto query = store_.statement("SELECT task_id, attempt_id FROM frames WHERE kind = 'final'");
    while (query.executeStep())
      finals.push_back({query.getColumn(0).getString(), query.getColumn(1).getString()});
  });
}

std::string FrameStore::oldest_created_at() {
  // The lowest id is the oldest frame: the primary key makes this one probe.
  std::string oldest;
  (void)store_.try_read("reading the oldest frame", [&] {
    auto query = store_.statement("SELECT created_at FROM frames ORDER BY id LIMIT 1");
    if (query.executeStep()) oldest = query.getColumn(0).getString();
  });
  return oldest;
}

bool FrameStore::drained_after_backlog() const {
  return rows_ == 0 && high_water_bytes_ >= kReclaimAfterBytes;
}

FramesCensus FrameStore::census(SQLite::Database& database) {
  FramesCensus census;
  // The `length` column and the index: nothing here reads a payload.
  SQLite::Statement kinds(database,
                          "SELECT kind, count(*), coalesce(sum(length), 0) FROM frames "
                          "GROUP BY kind");
  while (kinds.executeStep()) {
    const FrameKind kind = parse_kind(kinds.getColumn(0).getString());
    const uint64_t count = column_u64(kinds, 1);
    census.frames += count;
    switch (kind) {
      case FrameKind::kStarted:
        census.started = count;
        break;
      case FrameKind::kFinal:
        census.finals = count;
        break;
      case FrameKind::kGap:
        census.gaps = count;
        break;
      case FrameKind::kOutput:
        census.output = count;
        census.output_bytes = column_u64(kinds, 2);
        break;
    }
  }
  SQLite::Statement oldest(database, "SELECT created_at FROM frames ORDER BY id LIMIT 1");
  if (oldest.executeStep()) census.oldest_created_at = oldest.getColumn(0).getString();
  return census;
}

}  // namespace tether::agent
