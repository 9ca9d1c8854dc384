#include "hub/output_ledger.hpp"

namespace tether::hub {

StreamLedger& OutputLedger::stream(const std::string& attempt_id, protocol::StreamName name) {
  auto& slot = streams_[{attempt_id, name}];
  if (slot) return *slot;
  slot = std::make_unique<StreamLedger>();
  // Rebuild from storage, a page at a time so a large stream is never held
  // in memory at once.
  uint64_t after = 0;
  for (;;) {
    auto page = events_.stream_page(attempt_id, name, after, 256);
    for (const auto& event : page) {
      if (event.kind == EventKind::kOutput) {
        record_data(*slot, event.seq, event.data);
      } else {
        record_gap(*slot, event.seq, event.length);
      }
      after = event.seq;
    }
    if (page.size() < 256) break;
  }
  return *slot;
}

SequenceVerdict OutputLedger::classify(const StreamLedger& ledger, uint64_t seq,
                                       uint64_t offset) const {
  if (seq <= ledger.highest_seq) return SequenceVerdict::kDuplicate;
  if (seq > ledger.highest_seq + 1) return SequenceVerdict::kGap;
  if (offset != ledger.stored_bytes) return SequenceVerdict::kOffsetMismatch;
  return SequenceVerdict::kNext;
}

void OutputLedger::record_data(StreamLedger& ledger, uint64_t seq, std::string_view data) {
  ledger.highest_seq = seq;
  ledger.stored_bytes += data.size();
  ledger.digest.update(data);
}

void OutputLedger::record_gap(StreamLedger& ledger, uint64_t seq, uint64_t length) {
  ledger.highest_seq = seq;
  ledger.stored_bytes += length;
  ledger.gap_bytes += length;
}

void OutputLedger::forget(const std::string& attempt_id) {
  streams_.erase({attempt_id, protocol::StreamName::kStdout});
  streams_.erase({attempt_id, protocol::StreamName::kStderr});
}

}  // namespace tether::hub
