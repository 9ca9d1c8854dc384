// SendRecord: which stored frames have been sent (the outbox's
// `send_progress` and `frame_sends` tables, and the only code that touches
// them). The sender (ResultChannel) writes it; drop-oldest reads
// sent_through_id() to spare frames the hub may already have.
//
//   send_progress  one row: every frame with id <= sent_through_id was sent
//                  at least once. Durable at once (one small row per send batch).
//   frame_sends    per frame still waiting for an ack: when it was last sent
//                  and how often, for operators with sqlite3. Written a second
//                  later, and only for frames still stored: almost every frame
//                  is acked and deleted within milliseconds, so almost none
//                  needs that row.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/loop.hpp"
#include "core/sqlite_store.hpp"
#include "core/timer.hpp"

namespace tether::agent {

class SendRecord {
 public:
  // `wrote` runs inside each write this makes (the outbox's commit hooks).
  SendRecord(core::Loop& loop, core::SqliteStore& store, std::function<void()> wrote);
  SendRecord(const SendRecord&) = delete;
  SendRecord& operator=(const SendRecord&) = delete;
  // Writes the send times still pending (inside the store's last commit).
  ~SendRecord();

  // Reads where sending got to in an opened file.
  void load();
  // Frames first_id..last_id (outbox ids) were just sent.
  void mark_sent(int64_t first_id, int64_t last_id);
  // Every frame up to this id was sent at least once.
  int64_t sent_through_id() const { return sent_through_id_; }
  // Writes the pending send times now (the destructor does too).
  void flush();

 private:
  struct Mark {
    int64_t first_id;
    int64_t last_id;
    std::string at;
  };
  core::SqliteStore& store_;
  std::function<void()> wrote_;
  int64_t sent_through_id_ = 0;
  std::vector<Mark> pending_;
  core::Timer timer_;
};

}  // namespace tether::agent
