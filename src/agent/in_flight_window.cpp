#include "agent/in_flight_window.hpp"

namespace tether::agent {

void InFlightWindow::add(Entry entry) {
  bytes_ += entry.bytes;
  if (entry.kind == FrameKind::kOutput || entry.kind == FrameKind::kGap) {
    output_[{entry.attempt_id, entry.stream}].push_back(std::move(entry));
  } else {
    // The same message sent again replaces its entry (and its bytes).
    if (auto old = messages_.find(entry.message_id); old != messages_.end()) {
      bytes_ -= old->second.bytes;
    }
    auto key = entry.message_id;
    messages_.insert_or_assign(std::move(key), std::move(entry));
  }
}

void InFlightWindow::forget_output(const std::string& attempt_id, protocol::StreamName stream,
                                   uint64_t through_seq) {
  auto it = output_.find({attempt_id, stream});
  if (it == output_.end()) return;
  auto& frames = it->second;
  while (!frames.empty() && frames.front().seq <= through_seq) {
    bytes_ -= frames.front().bytes;
    frames.pop_front();
  }
  if (frames.empty()) output_.erase(it);
}

void InFlightWindow::forget_message(const std::string& message_id) {
  if (auto it = messages_.find(message_id); it != messages_.end()) {
    bytes_ -= it->second.bytes;
    messages_.erase(it);
    return;
  }
  // A refused output frame, named by its message id: rare, so a scan.
  for (auto stream = output_.begin(); stream != output_.end(); ++stream) {
    auto& frames = stream->second;
    for (auto frame = frames.begin(); frame != frames.end(); ++frame) {
      if (frame->message_id != message_id) continue;
      bytes_ -= frame->bytes;
      frames.erase(frame);
      if (frames.empty()) output_.erase(stream);
      return;
    }
  }
}

void InFlightWindow::forget_attempt(const std::string& attempt_id) {
  forget_stream(attempt_id, protocol::StreamName::kStdout);
  forget_stream(attempt_id, protocol::StreamName::kStderr);
  for (auto it = messages_.begin(); it != messages_.end();) {
    if (it->second.attempt_id == attempt_id) {
      bytes_ -= it->second.bytes;
      it = messages_.erase(it);
    } else {
      ++it;
    }
  }
}

void InFlightWindow::clear() {
  output_.clear();
  messages_.clear();
  bytes_ = 0;
}

}  // namespace tether::agent
