#include "agent/output_chunker.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "protocol/utf8.hpp"

namespace tether::agent {

OutputChunker::OutputChunker(protocol::StreamName stream, ChunkerOptions options, Sink sink)
    : stream_(stream), options_(options), sink_(std::move(sink)) {
  // Below four bytes a chunk could not hold one whole UTF-8 sequence.
  if (options_.chunk_bytes < 4) throw std::invalid_argument("chunk_bytes must be at least 4");
}

void OutputChunker::append(std::string_view bytes, uint64_t now_ms) {
  if (bytes.empty()) return;
  if (options_.pace) options_.pace->note_read(now_ms);
  if (!first_pending_at_) first_pending_at_ = now_ms;
  pending_.append(bytes);
  while (pending_.size() >= options_.chunk_bytes) {
    emit(options_.chunk_bytes, false, now_ms);
  }
  if (!pending_.empty() && quiet_for_an_interval(now_ms)) flush_due(now_ms);
}

void OutputChunker::on_deadline(uint64_t now_ms) {
  auto due = deadline();
  if (due && now_ms >= *due) flush_due(now_ms);
}

void OutputChunker::finish(uint64_t now_ms) {
  while (!pending_.empty())
    emit(options_.chunk_bytes, true, now_ms);
}

std::optional<uint64_t> OutputChunker::deadline() const {
  if (pending_.empty() || !first_pending_at_) return std::nullopt;
  if (protocol::incomplete_utf8_tail(pending_) == pending_.size()) return std::nullopt;
  return *first_pending_at_ + interval_ms(*first_pending_at_);
}

bool OutputChunker::quiet_for_an_interval(uint64_t now_ms) const {
  return !last_flush_at_ || now_ms - *last_flush_at_ >= interval_ms(now_ms);
}

uint64_t OutputChunker::interval_ms(uint64_t now_ms) const {
  return options_.pace ? options_.pace->flush_interval_ms(now_ms) : options_.flush_interval_ms;
}

void OutputChunker::flush_due(uint64_t now_ms) {
  emit(pending_.size(), false, now_ms);
}

size_t OutputChunker::emit(size_t limit, bool whole, uint64_t now_ms) {
  size_t length = std::min(limit, pending_.size());
  if (!whole) {
    // Hold back the start of a sequence whose remaining bytes may follow: at
    // the end of pending_ they have not arrived yet; at a size cut they sit
    // just after `length`.
    length -= protocol::incomplete_utf8_tail(std::string_view(pending_).substr(0, length));
  }
  if (length == 0) return 0;

  protocol::OutputChunk chunk;
  chunk.stream = stream_;
  chunk.seq = next_seq_++;
  chunk.offset = next_offset_;
  if (length == pending_.size()) {
    chunk.data = std::move(pending_);
    pending_.clear();
  } else {
    chunk.data.assign(pending_, 0, length);
    pending_.erase(0, length);
  }
  next_offset_ += length;
  last_flush_at_ = now_ms;
  first_pending_at_ = pending_.empty() ? std::nullopt : std::optional<uint64_t>(now_ms);
  sink_(std::move(chunk));
  return length;
}

}  // namespace tether::agent
