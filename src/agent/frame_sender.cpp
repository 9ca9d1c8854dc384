#include "agent/frame_sender.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/wall_clock.hpp"

namespace tether::agent {

namespace {

using protocol::StreamName;

// More than this queued on the socket and the sender waits for it to drain:
// frames are handed to the socket only as it can take them.
constexpr size_t kSocketHighWater = 1 << 20;
constexpr uint64_t kLongestResendBackoffMs = 30'000;
// At most this much is read from the outbox per batch.
constexpr uint64_t kBatchBytes = 1 << 20;
// A batch message (docs/protocol.md 4.4) is closed at this size, well under
// the 1 MiB message limit; a frame this large or larger goes alone.
constexpr size_t kBatchMessageBytes = 512 * 1024;

std::string undeliverable(StreamName stream, uint64_t seq, const std::string& why) {
  return std::string(protocol::to_string(stream)) + " could not be delivered from seq " +
         std::to_string(seq) + ": " + why;
}

}  // namespace

FrameSender::FrameSender(core::Loop& loop, Outbox& outbox, uint64_t send_window_bytes)
    : loop_(loop), outbox_(outbox), send_window_bytes_(send_window_bytes), wake_(loop) {}

void FrameSender::begin(std::shared_ptr<core::WebSocketConnection> socket) {
  socket_ = std::move(socket);
  cursor_ = 0;
  in_flight_.clear();
  final_sent_at_.clear();
  backlog_pending_ = outbox_.frames().rows() > 0;
}

std::optional<uint64_t> FrameSender::final_sent_at(const std::string& message_id) const {
  auto it = final_sent_at_.find(message_id);
  if (it == final_sent_at_.end()) return std::nullopt;
  return it->second;
}

core::Co<void> FrameSender::run(core::CancellationToken stop) {
  while (!stop.cancelled() && socket_ && socket_->is_open()) {
    loop_.update_time();
    if (resend_not_before_ms_ > loop_.now_ms()) {
      // A resend that keeps failing waits (backoff), rather than spin.
      (void)co_await wake_.wait(resend_not_before_ms_ - loop_.now_ms(), stop);
      continue;
    }
    const bool full =
        in_flight_.bytes() >= send_window_bytes_ || socket_->queued_bytes() >= kSocketHighWater;
    if (full || !send_batch(send_window_bytes_ - in_flight_.bytes())) {
      co_await wake_.wait(0, stop);
    }
  }
}

bool FrameSender::send_batch(uint64_t room) {
  auto frames = outbox_.frames().committed_after(cursor_, std::min(room, kBatchBytes));
  if (frames.empty()) return false;
  loop_.update_time();
  const std::string sent_at = core::utc_now();  // one send batch, one turn
  for (auto& frame : frames) {
    if (!prepare(frame)) {
      cursor_ = frame.id;
      continue;
    }
    const size_t bytes = frame.payload.size();
    if (in_flight_.bytes() == 0) waiting_since_ms_ = loop_.now_ms();
    queue_message(frame.id, protocol::stamp_sent_at(std::move(frame.payload), sent_at), sent_at);
    frames_sent_ += 1;
    bytes_sent_ += bytes;
    in_flight_.add(
        {frame.id, frame.message_id, frame.attempt_id, frame.kind, frame.stream, frame.seq, bytes});
    cursor_ = frame.id;
    if (frame.kind == FrameKind::kFinal) {
      final_sent_at_.try_emplace(frame.message_id, loop_.now_ms());
    }
  }
  flush_messages(sent_at);
  outbox_.sends().mark_sent(frames.front().id, frames.back().id);
  return true;
}

void FrameSender::queue_message(int64_t frame_id, std::string encoded, const std::string& sent_at) {
  if (!agreed_.frames_batch) {
    socket_->send_text(std::move(encoded));
    return;
  }
  if (!batched_.empty() && (batched_bytes_ + encoded.size() > kBatchMessageBytes ||
                            batched_.size() == protocol::kMaxBatchFrames)) {
    flush_messages(sent_at);
  }
  if (batched_.empty()) first_batched_id_ = frame_id;
  batched_bytes_ += encoded.size() + 1;
  batched_.push_back(std::move(encoded));
}

void FrameSender::flush_messages(const std::string& sent_at) {
  if (batched_.empty()) return;
  if (batched_.size() == 1) {
    socket_->send_text(std::move(batched_.front()));
  } else {
    // Named after its first frame's outbox id: unique in the session.
    socket_->send_text(protocol::encode_batch("batch:" + std::to_string(first_batched_id_), "",
                                              batched_, sent_at));
    batches_sent_ += 1;
  }
  batched_.clear();
  batched_bytes_ = 0;
}

bool FrameSender::prepare(StoredFrame& frame) {
  const bool output_kind = frame.kind == FrameKind::kOutput || frame.kind == FrameKind::kGap;
  if (output_kind && abandoned_.count({frame.attempt_id, frame.stream})) {
    return false;  // its stream ended (abandon_stream deletes it)
  }
  if (!agreed_.output_gap && frame.kind == FrameKind::kGap) {
    // This hub takes no task.output_gap: nothing of the stream from here on
    // can reach it. Said once, in the final.
    abandon(frame.attempt_id, frame.stream, frame.seq, std::nullopt,
            "output was dropped and the hub does not take gaps");
    return false;
  }
  if (!agreed_.output_base64 && frame.kind == FrameKind::kOutput &&
      frame.payload.find("\"encoding\":\"base64\"") != std::string::npos) {
    frame.payload = protocol::without_base64(std::move(frame.payload));
  }
  return true;
}

void FrameSender::forget_output(const std::string& attempt_id, StreamName stream,
                                uint64_t through_seq) {
  in_flight_.forget_output(attempt_id, stream, through_seq);
  wake_.notify_all();
}

void FrameSender::note_backlog_delivered() {
  // The operator watching an outage end sees when the agent has caught up.
  if (backlog_pending_ && outbox_.frames().rows() == 0) {
    backlog_pending_ = false;
    // Once the deletes are committed: whoever reads the file after this
    // line (an operator, a test) must find it empty.
    outbox_.when_committed(
        [] { core::log_info("channel", "backlog delivered: the outbox is empty"); });
  }
}

void FrameSender::output_acked(const std::string& attempt_id, StreamName stream,
                               uint64_t through_seq) {
  if (auto it = rewinds_.find({attempt_id, stream});
      it != rewinds_.end() && through_seq > it->second.point) {
    rewinds_.erase(it);  // past the point it kept going back to: progress
  }
  outbox_.ack_output(attempt_id, stream, through_seq);
  forget_output(attempt_id, stream, through_seq);
  note_backlog_delivered();
}

void FrameSender::message_acked(const std::string& message_id) {
  outbox_.ack_message(message_id);
  final_sent_at_.erase(message_id);
  in_flight_.forget_message(message_id);
  wake_.notify_all();
  note_backlog_delivered();
}

void FrameSender::rewind(const std::string& attempt_id, StreamName stream,
                         uint64_t highest_accepted, std::optional<uint64_t> stored_bytes) {
  // The hub wants seqs this outbox deleted once it had acked them (it lost
  // them): resending cannot help, the stream ends there (docs/protocol.md
  // 4.2), as when a hello_ack asks for them.
  const auto first = outbox_.frames().first_held_seq(attempt_id, stream);
  if (first && highest_accepted + 1 < *first) {
    abandon(attempt_id, stream, highest_accepted + 1, stored_bytes,
            "the hub no longer had what it had acknowledged");
    return;
  }
  auto& state = rewinds_[{attempt_id, stream}];
  state.count = state.point == highest_accepted ? state.count + 1 : 1;
  state.point = highest_accepted;
  if (state.count > 1) {
    const uint64_t delay =
        std::min<uint64_t>(kLongestResendBackoffMs, 100ull << std::min(state.count - 2, 16));
    loop_.update_time();
    resend_not_before_ms_ = std::max(resend_not_before_ms_, loop_.now_ms() + delay);
  }
  outbox_.ack_output(attempt_id, stream, highest_accepted);
  if (auto id = outbox_.frames().frame_id(attempt_id, stream, highest_accepted + 1)) {
    cursor_ = std::min(cursor_, *id - 1);
  }
  forget_output(attempt_id, stream, UINT64_MAX);
}

void FrameSender::abandon(const std::string& attempt_id, StreamName stream, uint64_t from_seq,
                          std::optional<uint64_t> from_offset, const std::string& because) {
  abandoned_.insert({attempt_id, stream});
  forget_output(attempt_id, stream, UINT64_MAX);
  outbox_.abandon_stream(attempt_id, stream, from_seq, from_offset,
                         undeliverable(stream, from_seq, because));
}

void FrameSender::drop_message(const std::string& message_id) {
  outbox_.ack_message(message_id);
  in_flight_.forget_message(message_id);
  wake_.notify_all();
}

void FrameSender::discard_attempt(const std::string& attempt_id) {
  outbox_.discard_attempt(attempt_id);
  in_flight_.forget_attempt(attempt_id);
  forget_streams_of(attempt_id);
  wake_.notify_all();
}

void FrameSender::attempt_done(const std::string& attempt_id) {
  forget_streams_of(attempt_id);
}

void FrameSender::forget_streams_of(const std::string& attempt_id) {
  for (StreamName stream : {StreamName::kStdout, StreamName::kStderr}) {
    abandoned_.erase({attempt_id, stream});
    rewinds_.erase({attempt_id, stream});
  }
}

}  // namespace tether::agent
