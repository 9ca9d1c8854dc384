// AttemptJournal: the outbox's `attempts` table, and the only code that reads
// or writes it: one row per attempt still running or whose final is not yet
// acked.
//
// A row holds what a restarted agent needs to report an attempt it lost
// (docs/agent.md, crash recovery): the pid, process group and their start
// times (to tell a leftover process from a reused pid), and per stream the
// bytes that reached the outbox, the bytes dropped, the bytes that can never
// be delivered, and the running SHA-256 state.
//
// Invariants:
// - Progress is kept in memory and written once per turn (flush(), just
//   before the turn's commit), not once per chunk.
// - An attempt the hub discarded stays discarded for this process's life:
//   its later final is not stored.
// - Writing methods run inside the caller's SqliteStore::write().
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/sqlite_store.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/frames.hpp"

namespace tether::agent {

struct StreamProgress {
  uint64_t bytes = 0;  // every byte the stream produced so far, dropped ones included
  uint64_t dropped = 0;
  uint64_t undelivered = 0;  // of `dropped`: never to be sent (abandoned)
  bool abandoned = false;
  std::string abandoned_because;  // for the final's error
  std::string digest_state;       // protocol::Sha256::state()
};

struct JournaledAttempt {
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

  StreamProgress& stream(protocol::StreamName name) {
    return name == protocol::StreamName::kStdout ? out : err;
  }
  const StreamProgress& stream(protocol::StreamName name) const {
    return name == protocol::StreamName::kStdout ? out : err;
  }
};

// What the status command shows of an attempts table (read-only, any process).
struct AttemptsCensus {
  uint64_t running = 0;
  uint64_t finished = 0;
  uint64_t dropped_bytes = 0;
};

class AttemptJournal {
 public:
  explicit AttemptJournal(core::SqliteStore& store) : store_(store) {}

  // --- writes (inside SqliteStore::write) ---
  void record_started(const JournaledAttempt& attempt);
  // The stream's progress after a chunk; written at the turn's end.
  StreamProgress& progress(const protocol::AttemptRef& attempt, protocol::StreamName stream);
  // Output bytes of a running attempt's stream that will not be sent.
  void count_dropped(const std::string& attempt_id, protocol::StreamName stream, uint64_t bytes,
                     bool undelivered = false);
  // Nothing of the stream from byte `from_offset` on can be delivered
  // (docs/protocol.md 5): `newly_dropped` output bytes were removed. False
  // if the attempt is not running (its final may need the same news).
  bool abandon(const std::string& attempt_id, protocol::StreamName stream, uint64_t from_offset,
               uint64_t newly_dropped, const std::string& why);
  // Fills in each stream's dropped and undelivered bytes, and why, then
  // marks the attempt finished (its final is being stored).
  void finish(const std::string& attempt_id, protocol::FinalReport& report);
  // The attempt's final was acked, or the hub discarded the attempt.
  void forget(const std::string& attempt_id);
  void discard(const std::string& attempt_id);
  bool discarded(const std::string& attempt_id) const { return discarded_.count(attempt_id) != 0; }
  // Writes the progress changed this turn (before the turn commits).
  void flush();

  // --- reads ---
  uint64_t dropped_bytes(const std::string& attempt_id, protocol::StreamName stream) const;
  // Output bytes dropped since this process opened the outbox.
  uint64_t dropped_total() const { return dropped_total_; }
  // Crash recovery: the attempts a previous run left running, adopted as live.
  std::vector<JournaledAttempt> running_attempts();
  // For agent.hello: the attempts running; false if the file is locked.
  bool running(std::vector<protocol::AttemptRef>& attempts);
  // The attempts running now, with their progress so far.
  std::vector<JournaledAttempt> live_attempts() const;
  static AttemptsCensus census(SQLite::Database& database);

 private:
  core::SqliteStore& store_;
  std::map<std::string, JournaledAttempt> live_;  // progress not yet written
  std::set<std::string> dirty_;
  std::set<std::string> discarded_;
  uint64_t dropped_total_ = 0;
};

}  // namespace tether::agent
