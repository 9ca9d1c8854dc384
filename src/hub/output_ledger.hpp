// OutputLedger: per (attempt, stream), what the hub has stored: the highest
// accepted seq, the bytes (data plus gaps) and a running SHA-256 of the data.
// It applies the sequence rules of docs/protocol.md section 5.
//
// Kept in memory for active attempts; rebuilt from the events table (data
// re-hashed) the first time an attempt is touched after a hub restart.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

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

class OutputLedger {
 public:
  explicit OutputLedger(EventLog& events) : events_(events) {}

  StreamLedger& stream(const std::string& attempt_id, protocol::StreamName stream);
  SequenceVerdict classify(const StreamLedger& ledger, uint64_t seq, uint64_t offset) const;
  void record_data(StreamLedger& ledger, uint64_t seq, std::string_view data);
  void record_gap(StreamLedger& ledger, uint64_t seq, uint64_t length);
  // Drops the in-memory state (after commit failures, or when an attempt ends).
  void forget(const std::string& attempt_id);
  void clear() { streams_.clear(); }

 private:
  EventLog& events_;
  std::map<std::pair<std::string, protocol::StreamName>, std::unique_ptr<StreamLedger>> streams_;
};

}  // namespace tether::hub
