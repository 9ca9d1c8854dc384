// OutputChunker: turns the bytes read from one stream of one attempt into
// output chunks (seq from 1, byte offset, data).
//
// Policy, chosen for latency without flooding:
//   - a chunk never exceeds chunk_bytes; reaching it flushes at once;
//   - bytes that arrive when nothing was flushed during the last interval go
//     out at once, so a lone line is never held back;
//   - otherwise bytes wait at most flush_interval after the first of them
//     arrived, which batches a chatty stream into few frames (the interval
//     grows while the whole agent is busy: OutputPace);
//   - a chunk never ends inside a UTF-8 sequence that may still complete;
//     invalid UTF-8 and binary bytes pass through untouched.
//
// The chunker holds no clock and no timer: callers pass the time in and arm a
// timer for deadline(). That keeps it deterministic under test.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/output_pace.hpp"
#include "protocol/attempt_report.hpp"

namespace tether::agent {

struct ChunkerOptions {
  uint64_t flush_interval_ms = 2;
  size_t chunk_bytes = 64 * 1024;
  // The agent's shared pace (not owned; outlives the chunker): when set,
  // each append counts as a read, and the interval is the pace's, not
  // flush_interval_ms (see OutputPace).
  OutputPace* pace = nullptr;
};

class OutputChunker {
 public:
  using Sink = std::function<void(protocol::OutputChunk&&)>;

  OutputChunker(protocol::StreamName stream, ChunkerOptions options, Sink sink);

  // Bytes read at `now_ms` (monotonic milliseconds). May emit chunks.
  void append(std::string_view bytes, uint64_t now_ms);

  // Call when deadline() has passed. Emits what is due.
  void on_deadline(uint64_t now_ms);

  // End of the stream: emits everything left, a partial UTF-8 sequence included.
  void finish(uint64_t now_ms);

  // When buffered bytes must go out, or nothing if none are waiting (bytes held
  // only to complete a UTF-8 sequence wait for more input, not for a timer).
  std::optional<uint64_t> deadline() const;

  // How long bytes that arrive at `now_ms` may be held (the pace's interval,
  // or flush_interval_ms without one).
  uint64_t interval_ms(uint64_t now_ms) const;
  uint64_t bytes_emitted() const { return next_offset_; }
  uint64_t chunks_emitted() const { return next_seq_ - 1; }
  size_t bytes_buffered() const { return pending_.size(); }

 private:
  // Emits up to `limit` bytes from the front of pending_, stopping short of an
  // incomplete UTF-8 sequence unless `whole` is set. Returns bytes emitted.
  size_t emit(size_t limit, bool whole, uint64_t now_ms);
  void flush_due(uint64_t now_ms);
  bool quiet_for_an_interval(uint64_t now_ms) const;

  protocol::StreamName stream_;
  ChunkerOptions options_;
  Sink sink_;
  std::string pending_;
  uint64_t next_seq_ = 1;
  uint64_t next_offset_ = 0;
  std::optional<uint64_t> first_pending_at_;
  std::optional<uint64_t> last_flush_at_;
};

}  // namespace tether::agent
