// FrameStore: the outbox's `frames` table, and the only code that reads or
// writes it.
//
// One row per frame, in replay order (id). The frame's JSON is kept as text,
// exactly as it will be sent but for sent_at (protocol::stamp_sent_at adds
// it per transmission), so an operator can read it with sqlite3
// (docs/operations.md has the queries).
//
// Invariants:
// - rows() and bytes() are the table's row count and the sum of its
//   payloads' lengths, kept in step with every insert and delete.
// - The sender sees a frame only once it is committed (committed_after).
//   Frames stored by this process and not yet handed to the sender are also
//   kept in memory (up to 4 MiB), so the common case reads nothing back; the
//   copy is dropped whenever stored rows change under it.
// - Writing methods run inside the caller's SqliteStore::write(). Reads go
//   through SqliteStore::try_read: they return nothing (an empty list, no
//   value) while another process locks the file.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/sqlite_store.hpp"
#include "protocol/frames.hpp"

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

// What a frame of output covers: its stream, seq and byte range.
struct OutputSpan {
  protocol::StreamName stream = protocol::StreamName::kStdout;
  uint64_t seq = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// What the status command shows of a frames table (read-only, any process).
struct FramesCensus {
  uint64_t frames = 0, started = 0, output = 0, gaps = 0, finals = 0;
  uint64_t output_bytes = 0;
  std::string oldest_created_at;
};

class FrameStore {
 public:
  FrameStore(core::SqliteStore& store, std::string agent_id);
  // Reads the totals of an opened file.
  void load();

  // --- writes (inside SqliteStore::write) ---
  // Stores one frame, sent later as {message_id, agent_id, payload}. A
  // message id already stored (a final replayed after a restart) adds
  // nothing. Returns the bytes added.
  uint64_t insert(const std::string& message_id, protocol::FramePayload payload, FrameKind kind,
                  std::optional<OutputSpan> span);
  // Cumulative: every output and gap frame of the stream up to `through_seq`.
  bool remove_output_through(const std::string& attempt_id, protocol::StreamName stream,
                             uint64_t through_seq);
  // One frame by message id. Sets `final_of` to its attempt if it was a final.
  bool remove_message(const std::string& message_id, std::string* final_of);
  bool remove_attempt(const std::string& attempt_id);
  // Frames of a stream from `from_seq` on.
  struct RemovedStream {
    bool freed = false;
    uint64_t output_bytes = 0;             // carried by the removed output frames
    std::optional<uint64_t> first_offset;  // lowest byte offset removed
  };
  RemovedStream remove_stream_from(const std::string& attempt_id, protocol::StreamName stream,
                                   uint64_t from_seq);
  // The attempt's oldest output frames with id > `after_id` that are larger
  // than the gap that would replace them (drop-oldest), at most 32.
  struct Unsent {
    int64_t id;
    std::string message_id;
    OutputSpan span;
    uint64_t size;  // of the payload
  };
  std::vector<Unsent> oldest_unsent_output(const std::string& attempt_id, int64_t after_id);
  // Turns an output frame into a gap with the same seq and byte range and no
  // data (docs/protocol.md 4.3). Returns the bytes freed.
  uint64_t convert_to_gap(const protocol::AttemptRef& attempt, const Unsent& frame);
  // Edits the stored final of `attempt_id`, if there is one; false if none.
  bool rewrite_final(const std::string& attempt_id,
                     const std::function<void(protocol::FinalReport&)>& edit);

  // --- reads ---
  // Committed frames with id > after_id, in order, up to about max_bytes.
  std::vector<StoredFrame> committed_after(int64_t after_id, size_t max_bytes);
  // The id of the first frame of `attempt`'s `stream` with seq >= `seq`.
  std::optional<int64_t> frame_id(const std::string& attempt_id, protocol::StreamName stream,
                                  uint64_t seq);
  // The first seq of `attempt_id`'s `stream` still held, if any.
  std::optional<uint64_t> first_held_seq(const std::string& attempt_id,
                                         protocol::StreamName stream);
  // Committed finals, in order.
  std::vector<StoredFrame> finals();
  // For agent.hello (docs/protocol.md 4.1): the seq range held per stream,
  // and the attempts whose final is held. False if the file is locked.
  bool describe(std::vector<protocol::OutboxRange>& ranges,
                std::vector<protocol::AttemptRef>& finals);
  // When the oldest frame still held was stored (UTC text), empty if none.
  std::string oldest_created_at();
  static FramesCensus census(SQLite::Database& database);

  // --- the turn's commit (Outbox calls these) ---
  void committed() { committed_max_id_ = std::max(committed_max_id_, newest_id_); }
  // The turn rolled back or rows changed under the in-memory copy.
  void forget_fresh();
  // Held a lot since the file last shrank, and now holds nothing.
  bool drained_after_backlog() const;
  void note_reclaimed() { high_water_bytes_ = 0; }
  void set_high_water(uint64_t bytes) { high_water_bytes_ = std::max(high_water_bytes_, bytes); }

  uint64_t bytes() const { return bytes_; }
  uint64_t rows() const { return rows_; }

 private:
  protocol::Frame frame(std::string message_id, protocol::FramePayload payload) const;
  // Steps `rows` (a SELECT of length(payload), ... with the WHERE of
  // `remove`), takes them off the totals, then runs `remove` (the DELETE) if
  // there were any; `each_row` sees every row. True if anything was removed.
  bool account_removed(core::ScopedStatement& rows, core::ScopedStatement& remove,
                       const std::function<void(core::ScopedStatement&)>& each_row = {});
  // The same, with both statements prepared from their SQL and `values`
  // bound to each in order (the two share one WHERE).
  template <typename... Values>
  bool remove_where(const char* select_sql, const char* delete_sql,
                    const std::function<void(core::ScopedStatement&)>& each_row,
                    const Values&... values) {
    auto rows = store_.statement(select_sql);
    rows.bind_all(values...);
    auto remove = store_.statement(delete_sql);
    remove.bind_all(values...);
    return account_removed(rows, remove, each_row);
  }
  void remember_fresh(StoredFrame frame);
  std::vector<StoredFrame> take_fresh(size_t max_bytes);

  core::SqliteStore& store_;
  std::string agent_id_;
  uint64_t bytes_ = 0;
  uint64_t rows_ = 0;
  uint64_t high_water_bytes_ = 0;  // most held since the file last shrank
  int64_t newest_id_ = 0;          // the last frame inserted
  int64_t committed_max_id_ = 0;   // the last frame committed
  std::deque<StoredFrame> fresh_;
  size_t fresh_bytes_ = 0;
  bool fresh_overflowed_ = false;
};

}  // namespace tether::agent
