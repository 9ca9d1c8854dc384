// FrameSender: the outbox's committed frames onto one session's socket, in
// outbox order, while less than the send window is unacknowledged and the
// socket has drained (docs/protocol.md 4.2), each stamped with sent_at.
//
// It owns what has been sent: the cursor (the last outbox id sent this
// session), the frames in flight (InFlightWindow), when each final went out
// (the HTTP fallback waits for its ack), the streams whose delivery ended
// (abandoned) and the backoff of a stream the hub keeps rewinding. What the
// hub answers reaches it through ResultChannel, which owns the connection.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/in_flight_window.hpp"
#include "agent/outbox.hpp"
#include "core/cancellation.hpp"
#include "core/co.hpp"
#include "core/notification.hpp"
#include "core/web_socket.hpp"
#include "protocol/capabilities.hpp"

namespace tether::agent {

class FrameSender {
 public:
  FrameSender(core::Loop& loop, Outbox& outbox, uint64_t send_window_bytes);

  // What both sides listed in the last hello_ack (section 9).
  void set_agreed(const protocol::Capabilities& agreed) { agreed_ = agreed; }
  // A session began: everything the outbox holds is sent again from its start.
  void begin(std::shared_ptr<core::WebSocketConnection> socket);
  void end() { socket_.reset(); }
  // Sends until `stop` (the session's end) or the socket closes.
  core::Co<void> run(core::CancellationToken stop);
  // The socket drained, or the outbox changed: look again.
  void wake() { wake_.notify_all(); }

  // --- what the hub said ---
  void output_acked(const std::string& attempt_id, protocol::StreamName stream,
                    uint64_t through_seq);
  void message_acked(const std::string& message_id);
  // The hub wants the stream again after `highest_accepted` (a gap it saw):
  // resend from there, waiting longer (100 ms doubling to 30 s) each time
  // it names the same point. If those seqs were acked and deleted here, the
  // stream is abandoned instead.
  // `stored_bytes`: the hub's next_offset, where undelivered bytes begin.
  void rewind(const std::string& attempt_id, protocol::StreamName stream, uint64_t highest_accepted,
              std::optional<uint64_t> stored_bytes);
  // Ends the delivery of a stream (Outbox::abandon_stream): nothing of it
  // is sent any more, not even frames already read for sending. The final
  // says "<stream> could not be delivered from seq <from_seq>: <because>".
  void abandon(const std::string& attempt_id, protocol::StreamName stream, uint64_t from_seq,
               std::optional<uint64_t> from_offset, const std::string& because);
  // The hub refused a started or final frame for good, or discarded an attempt.
  void drop_message(const std::string& message_id);
  void discard_attempt(const std::string& attempt_id);

  uint64_t in_flight_bytes() const { return in_flight_.bytes(); }
  // When (loop time, ms) the window last went from empty to holding frames:
  // an ack is owed from then on, not from the last ack before a quiet spell.
  uint64_t waiting_since_ms() const { return waiting_since_ms_; }
  // The attempt's final was acked: nothing more of it will be sent.
  void attempt_done(const std::string& attempt_id);
  // When a final was first sent on this session (loop time, ms), if it was.
  std::optional<uint64_t> final_sent_at(const std::string& message_id) const;
  uint64_t frames_sent() const { return frames_sent_; }  // resends included
  uint64_t bytes_sent() const { return bytes_sent_; }
  // Messages that carried several frames (docs/protocol.md 4.4).
  uint64_t batches_sent() const { return batches_sent_; }

 private:
  // Sends one batch read from the outbox; false if there was nothing to send.
  bool send_batch(uint64_t room);
  // False if the frame is not to be sent (its stream ended).
  bool prepare(StoredFrame& frame);
  // Sends an encoded frame, or, when the hub takes batches, keeps it for
  // the batch message flush_messages() sends (at kBatchMessageBytes, or
  // at the end of send_batch).
  void queue_message(int64_t frame_id, std::string encoded, const std::string& sent_at);
  void flush_messages(const std::string& sent_at);
  void forget_output(const std::string& attempt_id, protocol::StreamName stream,
                     uint64_t through_seq);
  // Said once per session that began with a backlog, once the outbox is empty.
  void note_backlog_delivered();
  // Drops what is kept per stream of an attempt (abandoned, rewinds).
  void forget_streams_of(const std::string& attempt_id);

  core::Loop& loop_;
  Outbox& outbox_;
  uint64_t send_window_bytes_;
  std::shared_ptr<core::WebSocketConnection> socket_;
  protocol::Capabilities agreed_ = protocol::Capabilities::all();
  int64_t cursor_ = 0;
  std::vector<std::string> batched_;  // encoded frames for the next batch message
  size_t batched_bytes_ = 0;
  int64_t first_batched_id_ = 0;
  uint64_t batches_sent_ = 0;
  InFlightWindow in_flight_;
  std::map<std::string, uint64_t> final_sent_at_;
  struct Rewinds {
    uint64_t point = 0;  // the highest accepted seq the hub keeps naming
    int count = 0;
  };
  std::map<std::pair<std::string, protocol::StreamName>, Rewinds> rewinds_;
  uint64_t resend_not_before_ms_ = 0;
  std::set<std::pair<std::string, protocol::StreamName>> abandoned_;
  bool backlog_pending_ = false;
  uint64_t waiting_since_ms_ = 0;
  uint64_t frames_sent_ = 0;
  uint64_t bytes_sent_ = 0;
  core::Notification wake_;
};

}  // namespace tether::agent
