// InFlightWindow: the frames sent on this session and not yet acknowledged
// (docs/protocol.md 4.2, the send window), and their bytes.
//
// Output and gap frames are kept per stream in seq order, so that a
// cumulative ack costs what it acknowledges, not a scan of everything
// unacknowledged (with hundreds of chatty tasks the window holds tens of
// thousands of small frames); started and final frames by message id.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "agent/frame_store.hpp"

namespace tether::agent {

class InFlightWindow {
 public:
  struct Entry {
    int64_t id;  // in the outbox
    std::string message_id;
    std::string attempt_id;
    FrameKind kind;
    protocol::StreamName stream;
    uint64_t seq;
    size_t bytes;
  };

  void add(Entry entry);
  // Output and gap frames of one stream with seq <= through_seq.
  void forget_output(const std::string& attempt_id, protocol::StreamName stream,
                     uint64_t through_seq);
  void forget_stream(const std::string& attempt_id, protocol::StreamName stream) {
    forget_output(attempt_id, stream, UINT64_MAX);
  }
  // One frame by message id (a started or final frame, or a refused output frame).
  void forget_message(const std::string& message_id);
  void forget_attempt(const std::string& attempt_id);
  void clear();
  uint64_t bytes() const { return bytes_; }

 private:
  std::map<std::pair<std::string, protocol::StreamName>, std::deque<Entry>> output_;
  std::map<std::string, Entry> messages_;
  uint64_t bytes_ = 0;
};

}  // namespace tether::agent
