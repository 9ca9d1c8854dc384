// StreamCapture: reads one pipe of a child to its end and turns the bytes into
// output chunks for an AttemptSink, keeping the byte count and SHA-256 the
// final report carries. The task's secret values are taken out first
// (SecretRedactor): chunks, count and digest are of the redacted stream.
//
// A chatty stream is polled, not woken for: once a read brings less than
// kPollBelowBytes and leaves bytes held for the chunker's interval, the pipe
// is read again at that deadline (and every interval after it while each
// poll finds bytes) instead of on each write. The held bytes would wait for
// the deadline anyway, so no byte waits longer than before, and 200 tasks
// writing a line every 10 ms cost one read per frame instead of a wakeup,
// two epoll_ctl calls and a read per line (issue [6/8]). A poll that finds
// the pipe empty goes back to waiting for it; a large read (bulk output)
// never polls, so bulk is not paced by a timer.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "agent/attempt_sink.hpp"
#include "agent/output_chunker.hpp"
#include "agent/secret_redactor.hpp"
#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/loop.hpp"
#include "core/pipe_reader.hpp"
#include "core/timer.hpp"
#include "protocol/sha256.hpp"

namespace tether::agent {

class StreamCapture {
 public:
  // Reads smaller than this (a few lines) make a stream chatty.
  static constexpr size_t kPollBelowBytes = 4096;
  // Reads per poll at most, so one stream cannot hold the loop.
  static constexpr int kMaxReadsPerPoll = 16;

  // `secrets`: the task's (name to value); none for a task without.
  StreamCapture(core::Loop& loop, core::PipeReader& reader, protocol::StreamName stream,
                ChunkerOptions options, AttemptSink& sink,
                const std::map<std::string, std::string>& secrets = {});
  StreamCapture(const StreamCapture&) = delete;
  StreamCapture& operator=(const StreamCapture&) = delete;

  // Reads until end of stream, a read error, or `stop`; then emits whatever is
  // still buffered. Every byte read is in some chunk when this returns.
  core::Co<void> run(core::CancellationToken stop);

  protocol::StreamSummary summary() const;
  // Secret values replaced in this stream.
  uint64_t redactions() const { return redactor_.redactions(); }
  // Set when reading ended on an error rather than end of stream or stop.
  const std::optional<Error>& read_error() const { return read_error_; }
  // True while reading is paused because the sink has no room (the task's
  // writes then block on a full pipe: our doing, not the task's).
  bool waiting_for_room() const { return waiting_for_room_; }

 private:
  void arm_timer();
  // Reads the pipe on the chunker's deadlines while it keeps bringing bytes
  // (see above). Returns when a poll finds it empty, the sink is full, or on
  // `stop`; nothing read is left unframed past its deadline.
  core::Co<void> poll_while_chatty(core::CancellationToken stop);
  // Every byte the pipe holds now (up to kMaxReadsPerPoll reads, each only
  // while the sink accepts output) into the chunker. Whether there were any.
  bool take_available();
  // Bytes read (or, with `end`, the stream's end) into the chunker, redacted.
  void take(std::string_view bytes, bool end);

  core::Loop& loop_;
  core::PipeReader& reader_;
  AttemptSink& sink_;
  protocol::Sha256 digest_;
  SecretRedactor redactor_;
  std::string redacted_;  // reused between reads
  OutputChunker chunker_;
  core::Timer timer_;
  std::optional<uint64_t> armed_for_;
  std::optional<Error> read_error_;
  bool waiting_for_room_ = false;
};

}  // namespace tether::agent
