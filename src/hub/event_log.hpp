// EventLog: the events table, the history a task's viewers replay, and a
// run's: each event of a task in a fan-out run carries the run's id, and a
// run's own state changes are events of kind "run" (docs/protocol.md 11.5).
//
// Output chunks are stored once, here; the raw output endpoint, SSE replay
// and final verification all read them back from this table.
//
// Ids grow in commit order within a task, and within a run: a viewer that
// resumes after id N has seen every event of its task or run up to N. One
// writer at a time (SQLite) gives that by itself; where several hubs write
// at once (PostgreSQL), each insert first takes a transaction lock on the
// task's run, or on the task if it has none, so a second hub's event of the
// same task waits for the first one's turn to commit and gets a larger id.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hub/hub_store.hpp"
#include "protocol/attempt_report.hpp"

namespace tether::hub {

enum class EventKind { kStatus, kOutput, kGap, kFinal, kRun };
std::string_view to_string(EventKind kind);

struct StoredEvent {
  uint64_t id = 0;
  std::string task_id;  // for a run event, the run's id
  std::string attempt_id;
  std::string run_id;  // the task's run ("" for none), or the run's own
  EventKind kind = EventKind::kStatus;
  std::string state;  // status events: the task's new state
  protocol::StreamName stream = protocol::StreamName::kStdout;
  uint64_t seq = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string data;     // output bytes
  std::string payload;  // JSON, for status and final events
  std::string stored_at;
  int64_t stored_at_us = 0;
};

// Where a replay's output starts, per stream: output events of a stream
// with a smaller id are left out (0: none are). From ?tail_bytes=
// (docs/protocol.md 11.1).
struct OutputFrom {
  uint64_t stdout_id = 0;
  uint64_t stderr_id = 0;
};

class EventLog {
 public:
  explicit EventLog(core::SqlStore& store) : store_(store) {}

  // Each inserts within the turn's transaction and returns the event. Its
  // id (and a task event's run_id) is set once the insert ran: at once on
  // SQLite; on PostgreSQL with the entry point's next statement, at its end
  // (SqlStore::guarded, write) at the latest, or at SqlStore::send_queued.
  // Until then id is 0: read it after the entry point, or after the commit.
  std::shared_ptr<const StoredEvent> append_status(const std::string& task_id,
                                                   const std::string& attempt_id,
                                                   std::string_view state, std::string payload);
  std::shared_ptr<const StoredEvent> append_output(const std::string& task_id,
                                                   const std::string& attempt_id,
                                                   const protocol::OutputChunk& chunk);
  std::shared_ptr<const StoredEvent> append_gap(const std::string& task_id,
                                                const std::string& attempt_id,
                                                protocol::StreamName stream, uint64_t seq,
                                                uint64_t offset, uint64_t length);
  std::shared_ptr<const StoredEvent> append_final(const std::string& task_id,
                                                  const std::string& attempt_id,
                                                  std::string payload);
  // A run's state changed: {"run_id","state","note","at"}.
  std::shared_ptr<const StoredEvent> append_run(const std::string& run_id, std::string_view state,
                                                std::string payload);

  // True where other hubs write to the same events (PostgreSQL).
  bool shared() const { return store_.concurrent_writers(); }
  // The highest seq stored for each stream of an attempt (output or gap; 0:
  // none), in one read.
  struct HighestSeqs {
    uint64_t stdout_seq = 0;
    uint64_t stderr_seq = 0;
  };
  HighestSeqs highest_seqs(const std::string& attempt_id);
  // The event with `id`, if stored.
  std::optional<StoredEvent> read(uint64_t id);
  // Events of a task with id > after_id, oldest first, at most `limit`;
  // without output events (status, gaps and finals only) if !with_output.
  // Output events before `from` are left out too.
  std::vector<StoredEvent> page(const std::string& task_id, uint64_t after_id, int limit,
                                bool with_output = true, OutputFrom from = {});
  // For each stream of `attempt_id`: the first output event holding any of
  // its last `tail_bytes` bytes stored now (0 for a stream with none).
  OutputFrom tail_of(const std::string& attempt_id, uint64_t tail_bytes);
  // The events of a run's tasks and the run's own, id > after_id, oldest
  // first, at most `limit` (as page).
  std::vector<StoredEvent> run_page(const std::string& run_id, uint64_t after_id, int limit,
                                    bool with_output = true);
  // Output and gap events of one stream with seq > after_seq, in seq order.
  std::vector<StoredEvent> stream_page(const std::string& attempt_id, protocol::StreamName stream,
                                       uint64_t after_seq, int limit);
  // stream_page of both streams in one read: up to `limit` events of stdout
  // with seq > after_stdout, then up to `limit` of stderr with seq >
  // after_stderr, each in seq order.
  std::vector<StoredEvent> streams_page(const std::string& attempt_id, uint64_t after_stdout,
                                        uint64_t after_stderr, int limit);

 private:
  std::shared_ptr<StoredEvent> insert(StoredEvent event);
  core::SqlStore& store_;
};

// "id: N\nevent: kind\ndata: {...}\n\n".
std::string format_sse(const StoredEvent& event);

}  // namespace tether::hub
