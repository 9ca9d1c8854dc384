// WalCheckpointer: folds a WAL-mode SQLite database's committed pages back
// into the database file on a thread of its own (SQLite's "checkpoint";
// https://www.sqlite.org/wal.html#checkpointing), so the loop thread never
// waits for a checkpoint's reads, writes and fsyncs.
//
// Why: SQLite's automatic checkpoint runs inside the COMMIT that takes the
// WAL past 1,000 pages, on the thread that commits. Under 200 chatty tasks
// the agent's loop stopped for tens of milliseconds at each one, and every
// line read meanwhile waited (p99 325 ms, issue [6/8]).
//
// Invariants: the owner turns automatic checkpoints off on its connection
// and reports the WAL's size after each commit (note_wal_pages, from
// sqlite3_wal_hook). From threshold pages on, this thread runs a PASSIVE
// checkpoint on its own connection: it never blocks the writer, and the
// writer starts the WAL over once a checkpoint has caught up. Failures
// (busy, I/O) are logged once per kind of failure and retried at the next
// note; the writer's own commits are unaffected.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/result.hpp"

struct sqlite3;

namespace tether::core {

class WalCheckpointer {
 public:
  // Opens a second connection to `path` (which must exist, in WAL mode).
  // Errors: kIo "database" when it cannot be opened.
  static Result<std::unique_ptr<WalCheckpointer>> start(const std::string& path,
                                                        int threshold_pages);
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;
  // Stops the thread (a running checkpoint finishes first) and closes.
  ~WalCheckpointer();

  // The WAL holds `pages` after a commit. Cheap: wakes the thread at the
  // threshold. Any thread.
  void note_wal_pages(int pages);

  // Checkpoints done (for tests and metrics).
  uint64_t checkpoints() const;

 private:
  WalCheckpointer(sqlite3* connection, std::string path, int threshold_pages);
  void run();

  sqlite3* connection_;
  std::string path_;
  int threshold_pages_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool wanted_ = false;
  bool stopping_ = false;
  uint64_t checkpoints_ = 0;
  std::thread thread_;
};

}  // namespace tether::core
