#include "agent/stream_capture.hpp"

#include <utility>

namespace tether::agent {

StreamCapture::StreamCapture(core::Loop& loop, core::PipeReader& reader,
                             protocol::StreamName stream, ChunkerOptions options, AttemptSink& sink,
                             const std::map<std::string, std::string>& secrets)
    : loop_(loop),
      reader_(reader),
      sink_(sink),
      redactor_(secrets),
      chunker_(stream, options,
               [this](protocol::OutputChunk&& chunk) {
                 digest_.update(chunk.data);
                 sink_.on_output(std::move(chunk), digest_);
               }),
      timer_(loop) {}

core::Co<void> StreamCapture::run(core::CancellationToken stop) {
  for (;;) {
    // The sink is full (outbox block policy): stop reading until it has room.
    while (!sink_.accepting_output() && !stop.cancelled()) {
      waiting_for_room_ = true;
      auto& room = *sink_.room();
      co_await room.wait(1000);
    }
    waiting_for_room_ = false;
    auto read = co_await reader_.read(stop);
    if (!read) {
      if (!read.is_cancelled()) read_error_ = read.error();
      break;
    }
    if (read->end_of_stream) break;
    const bool small = read->bytes.size() < kPollBelowBytes;
    take(read->bytes, false);
    if (small && chunker_.deadline()) {
      timer_.stop();
      armed_for_.reset();
      co_await poll_while_chatty(stop);
    }
    arm_timer();
  }
  timer_.stop();
  armed_for_.reset();
  take({}, true);
  chunker_.finish(loop_.now_ms());
}

core::Co<void> StreamCapture::poll_while_chatty(core::CancellationToken stop) {
  for (;;) {
    const uint64_t now = loop_.now_ms();
    const auto deadline = chunker_.deadline();
    // Held bytes go out at their deadline; with none held, the next poll is
    // one interval on, when bytes read then would go out at once.
    const uint64_t wait =
        deadline ? (*deadline > now ? *deadline - now : 0) : chunker_.interval_ms(now);
    auto slept = co_await core::sleep_for(loop_, wait, stop);
    const bool found = slept && take_available();
    chunker_.on_deadline(loop_.now_ms());
    if (!slept || !found || !sink_.accepting_output()) co_return;
  }
}

bool StreamCapture::take_available() {
  bool found = false;
  for (int reads = 0; reads < kMaxReadsPerPoll; ++reads) {
    // Asked before every read, as run() does: up to kMaxReadsPerPoll reads
    // without asking could take a MiB past a full sink (drop-oldest would then
    // drop output while the hub is taking frames).
    if (!sink_.accepting_output()) break;
    const std::string_view bytes = reader_.read_available();
    if (bytes.empty()) break;
    found = true;
    take(bytes, false);
  }
  return found;
}

void StreamCapture::take(std::string_view bytes, bool end) {
  if (!redactor_.active()) {
    chunker_.append(bytes, loop_.now_ms());
    return;
  }
  redacted_.clear();
  if (end) {
    redactor_.finish(redacted_);
  } else {
    redactor_.append(bytes, redacted_);
  }
  chunker_.append(redacted_, loop_.now_ms());
}

void StreamCapture::arm_timer() {
  const auto deadline = chunker_.deadline();
  if (deadline == armed_for_) return;
  armed_for_ = deadline;
  if (!deadline) {
    timer_.stop();
    return;
  }
  const uint64_t now = loop_.now_ms();
  timer_.start(*deadline > now ? *deadline - now : 0, [this] {
    armed_for_.reset();
    chunker_.on_deadline(loop_.now_ms());
    arm_timer();
  });
}

protocol::StreamSummary StreamCapture::summary() const {
  protocol::StreamSummary summary;
  summary.bytes = chunker_.bytes_emitted();
  summary.sha256 = digest_.hex_digest();
  return summary;
}

}  // namespace tether::agent
