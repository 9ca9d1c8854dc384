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
    take(read->bytes, false);
    arm_timer();
  }
  timer_.stop();
  armed_for_.reset();
  take({}, true);
  chunker_.finish(loop_.now_ms());
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
