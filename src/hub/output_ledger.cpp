#include "hub/output_ledger.hpp"

namespace tether::hub {

namespace {

constexpr protocol::StreamName kStreams[] = {protocol::StreamName::kStdout,
                                             protocol::StreamName::kStderr};

}  // namespace

StreamLedger& OutputLedger::stream(const std::string& attempt_id, protocol::StreamName stream) {
  auto& slot = streams_[{attempt_id, stream}];
  if (!slot) load(attempt_id);
  return *slot;
}

void OutputLedger::load(const std::string& attempt_id) {
  // Both streams at once (one read per page: a round trip on PostgreSQL),
  // a page at a time so a large stream is never held in memory at once. A
  // stream already held is not read: its page starts past every seq.
  constexpr int kPage = 256;
  constexpr uint64_t kPastAll = static_cast<uint64_t>(INT64_MAX);
  StreamLedger* ledgers[2] = {nullptr, nullptr};
  uint64_t after[2] = {kPastAll, kPastAll};
  for (size_t i = 0; i < 2; ++i) {
    auto& slot = streams_[{attempt_id, kStreams[i]}];
    if (slot) continue;
    slot = std::make_unique<StreamLedger>();
    ledgers[i] = slot.get();
    after[i] = 0;
  }
  for (;;) {
    auto page = events_.streams_page(attempt_id, after[0], after[1], kPage);
    int read[2] = {0, 0};
    for (const auto& event : page) {
      const size_t i = event.stream == protocol::StreamName::kStdout ? 0 : 1;
      if (event.kind == EventKind::kOutput) {
        record_data(*ledgers[i], event.seq, event.data);
      } else {
        record_gap(*ledgers[i], event.seq, event.length);
      }
      after[i] = event.seq;
      ++read[i];
    }
    // A stream whose page was not full has no more.
    for (size_t i = 0; i < 2; ++i)
      if (read[i] < kPage) after[i] = kPastAll;
    if (after[0] == kPastAll && after[1] == kPastAll) break;
  }
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

void OutputLedger::refresh(const std::string& attempt_id) {
  if (!events_.shared()) return;
  auto held_out = streams_.find({attempt_id, protocol::StreamName::kStdout});
  auto held_err = streams_.find({attempt_id, protocol::StreamName::kStderr});
  if (held_out == streams_.end() && held_err == streams_.end()) return;  // read when used
  const auto stored = events_.highest_seqs(attempt_id);
  if ((held_out != streams_.end() && stored.stdout_seq != held_out->second->highest_seq) ||
      (held_err != streams_.end() && stored.stderr_seq != held_err->second->highest_seq)) {
    forget(attempt_id);
  }
}

void OutputLedger::forget(const std::string& attempt_id) {
  streams_.erase({attempt_id, protocol::StreamName::kStdout});
  streams_.erase({attempt_id, protocol::StreamName::kStderr});
}

namespace {

// What one stream's stored output lacks against its final, or empty.
std::string stream_problems(const StreamLedger& ledger, const protocol::StreamSummary& summary,
                            const std::string& name) {
  if (summary.undelivered_bytes > 0) {
    return "the agent could not deliver the last " + std::to_string(summary.undelivered_bytes) +
           " bytes of " + name +
           " (a frame of it was refused, or its seqs were gone; see the final's error); " +
           std::to_string(ledger.stored_bytes) + " are stored";
  }
  if (summary.dropped_bytes > 0 || ledger.gap_bytes > 0) {
    std::string text = "the agent dropped " + std::to_string(summary.dropped_bytes) + " bytes of " +
                       name + " (outbox full); gap events mark where";
    if (ledger.gap_bytes != summary.dropped_bytes) {
      text +=
          "; the hub recorded " + std::to_string(ledger.gap_bytes) + " bytes of " + name + " gaps";
    }
    return text;
  }
  if (summary.bytes < ledger.stored_bytes) {
    return "the hub stored " + std::to_string(ledger.stored_bytes) + " bytes of " + name +
           " but the final reports " + std::to_string(summary.bytes);
  }
  if (ledger.digest.hex_digest() != summary.sha256) {
    return "the SHA-256 of the stored " + name + " differs from the agent's";
  }
  return {};
}

}  // namespace

std::vector<MissingOutput> OutputLedger::missing(const std::string& attempt_id,
                                                 const protocol::FinalReport& report) {
  std::vector<MissingOutput> missing;
  for (protocol::StreamName name : kStreams) {
    const StreamLedger& ledger = stream(attempt_id, name);
    const auto& summary = report.summary(name);
    if (summary.bytes - summary.undelivered_bytes > ledger.stored_bytes) {
      missing.push_back({name, ledger.highest_seq + 1, ledger.stored_bytes, summary.bytes});
    }
  }
  return missing;
}

OutputVerification OutputLedger::verify(const std::string& attempt_id,
                                        const protocol::FinalReport& report) {
  OutputVerification result;
  for (protocol::StreamName name : kStreams) {
    const std::string problem = stream_problems(stream(attempt_id, name), report.summary(name),
                                                std::string(to_string(name)));
    if (problem.empty()) continue;
    result.verified = false;
    result.problems += (result.problems.empty() ? "" : "; ") + problem;
  }
  return result;
}

}  // namespace tether::hub
