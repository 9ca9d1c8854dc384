// OutputLedger: per (attempt, stream), what the hub has stored: the highest
// accepted seq, the bytes (data plus gaps) and a running SHA-256 of the data.
// It applies the sequence rules of docs/protocol.md section 5.
//
// Kept in memory for active attempts; rebuilt from the events table (data
// re-hashed) the first time an attempt is touched after a hub restart. With
// other hubs on the database, an attempt's output may have been stored by
// another hub since (its agent's channel moved): refresh() checks, where the
// agent comes back (its hello) and where a final may arrive (over HTTP, on
// any hub), and drops a ledger that is behind.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "protocol/attempt_report.hpp"

#include "hub/event_log.hpp"
#include "protocol/sha256.hpp"

namespace tether::hub {

struct StreamLedger {
  uint64_t highest_seq = 0;
  uint64_t stored_bytes = 0;  // data bytes plus gap lengths: the next offset
  uint64_t gap_bytes = 0;
  protocol::Sha256 digest;  // over the data bytes, in order
};

enum class SequenceVerdict { kNext, kDuplicate, kGap, kOffsetMismatch };

// Output a final reports that the hub has not stored (docs/protocol.md 6).
struct MissingOutput {
  protocol::StreamName stream;
  uint64_t from_seq = 0;
  uint64_t from_offset = 0;
  uint64_t expected_bytes = 0;
};

// A final's output checked against what is stored.
struct OutputVerification {
  bool verified = true;
  std::string problems;  // empty when verified; "; "-separated otherwise
};

class OutputLedger {
 public:
  explicit OutputLedger(EventLog& events) : events_(events) {}

  StreamLedger& stream(const std::string& attempt_id, protocol::StreamName stream);
  SequenceVerdict classify(const StreamLedger& ledger, uint64_t seq, uint64_t offset) const;
  void record_data(StreamLedger& ledger, uint64_t seq, std::string_view data);
  void record_gap(StreamLedger& ledger, uint64_t seq, uint64_t length);
  // Per stream, output the final reports and the hub has not stored; bytes
  // the agent says it could never send (section 5) are not waited for.
  std::vector<MissingOutput> missing(const std::string& attempt_id,
                                     const protocol::FinalReport& report);
  // Whether the stored output is exactly what the final describes: sizes,
  // drops, gaps and SHA-256, per stream (section 6).
  OutputVerification verify(const std::string& attempt_id, const protocol::FinalReport& report);
  // Where other hubs write too (EventLog::shared), drops what memory holds
  // of `attempt_id` if the events table has a later seq for one of its
  // streams (one read for both). Nothing to do on hub.db.
  void refresh(const std::string& attempt_id);
  // Drops the in-memory state (after commit failures, or when an attempt ends).
  void forget(const std::string& attempt_id);
  void clear() { streams_.clear(); }

 private:
  // Rebuilds the ledgers of the attempt's streams not held, from storage.
  void load(const std::string& attempt_id);

  EventLog& events_;
  std::map<std::pair<std::string, protocol::StreamName>, std::unique_ptr<StreamLedger>> streams_;
};

}  // namespace tether::hub
