// The frames of protocol v1 (docs/protocol.md, section 4) and their codec.
//
// decode_frame() checks every field a frame type requires and names the
// first bad one in the error; it never trusts sizes or ids from the wire.
// encode_frame() writes what decode_frame() reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/labels.hpp"

namespace tether::protocol {

// Section 2.1. One WebSocket message or HTTP body.
inline constexpr size_t kMaxFrameBytes = 1 << 20;
// The largest output chunk (task.output data after decoding). Chosen so that
// any chunk fits one message: JSON escapes a byte to at most 6 ("\u001f"),
// base64 takes 4 per 3, and the rest of a frame is under 2 KiB.
inline constexpr size_t kMaxChunkBytes = 128 << 10;
static_assert(6 * kMaxChunkBytes + 2048 <= kMaxFrameBytes, "a chunk must fit a message");
inline constexpr size_t kMaxMessageIdLength = 256;
inline constexpr size_t kMaxCapabilities = 64;
inline constexpr size_t kMaxHelloEntries = 100'000;

struct AttemptRef {
  std::string task_id;
  std::string attempt_id;
};

struct OutboxRange {
  AttemptRef attempt;
  StreamName stream = StreamName::kStdout;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
};

struct AgentHello {
  std::string version;
  std::vector<std::string> capabilities;
  std::vector<AttemptRef> running;
  std::vector<OutboxRange> outbox;
  std::vector<AttemptRef> unacked_finals;
  std::optional<uint64_t> outbox_rows;
  std::optional<uint64_t> outbox_bytes;
  // This run of the agent process (section 8): the same in its polls.
  // Empty if the agent does not say.
  std::string instance;
  // The lists were cut to fit one message (section 4.1): what is left out
  // is still held, and nothing may be concluded from its absence.
  bool partial = false;
  // What the agent says of itself (agent.conf `labels`, protocol/labels.hpp);
  // the control plane's own labels for it take precedence (docs/protocol.md 4.1).
  Labels labels;
};

struct TaskStarted {
  AttemptRef attempt;
  StartedReport report;
};

struct TaskOutput {
  AttemptRef attempt;
  OutputChunk chunk;
};

struct TaskOutputGap {
  AttemptRef attempt;
  StreamName stream = StreamName::kStdout;
  uint64_t seq = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct TaskFinal {
  AttemptRef attempt;
  FinalReport report;
};

struct ResumePoint {
  std::string attempt_id;
  StreamName stream = StreamName::kStdout;
  uint64_t next_seq = 1;
};

struct DiscardNotice {
  std::string attempt_id;
  std::string reason;
};

struct HubHelloAck {
  std::string related_message_id;
  std::string version;
  std::vector<std::string> capabilities;
  std::vector<ResumePoint> resume;
  std::vector<std::string> finals_held;
  std::vector<DiscardNotice> discard;
};

enum class AckedKind : uint8_t { kOutput, kStarted, kFinal };

struct Ack {
  std::string attempt_id;
  AckedKind acked = AckedKind::kOutput;
  StreamName stream = StreamName::kStdout;  // kOutput only
  uint64_t through_seq = 0;                 // kOutput only
  std::string related_message_id;           // kStarted and kFinal
  std::optional<bool> verified;             // kFinal
};

struct ErrorFrame {
  std::string code;
  std::string message;
  bool retryable = false;
  std::string related_message_id;
  std::string attempt_id;
  std::optional<StreamName> stream;
  std::optional<uint64_t> highest_accepted_seq;
  std::optional<uint64_t> next_offset;
};

struct TaskCancel {
  AttemptRef attempt;
  std::string reason;
};

struct HubWake {};

using FramePayload = std::variant<AgentHello, TaskStarted, TaskOutput, TaskOutputGap, TaskFinal,
                                  HubHelloAck, Ack, ErrorFrame, TaskCancel, HubWake>;

// The type of a message holding several frames (section 4.4).
inline constexpr std::string_view kBatchType = "batch";

struct Frame {
  int v = 1;
  std::string message_id;
  std::string agent_id;
  std::string sent_at;
  FramePayload payload;

  std::string_view type() const;
};

// Errors: "frame_too_large", "invalid_frame" (names the field),
// "unsupported_version", "unknown_type". A batch is "unknown_type" here:
// read messages with decode_frames.
Result<Frame> decode_frame(std::string_view json);

// One WebSocket message: a frame, or the frames of a batch (section 4.4:
// {"v":1,"type":"batch","message_id":..,"frames":[FRAME,...]}, 1 to
// kMaxBatchFrames frames, none of them a batch), in order. Errors as
// decode_frame's, an inner frame's naming it (`frame.frames[2].seq: ...`);
// one bad frame refuses the whole message.
inline constexpr size_t kMaxBatchFrames = 4096;
Result<std::vector<Frame>> decode_frames(std::string_view json);

// A batch message holding `frames`, each already encoded (encode_frame or
// stamp_sent_at), in order. The caller keeps the total under
// kMaxFrameBytes (section 2.1).
std::string encode_batch(std::string_view message_id, std::string_view agent_id,
                         const std::vector<std::string>& frames, std::string_view sent_at);

// Best effort, for error replies to frames that did not decode.
std::string peek_message_id(std::string_view json);
// The task_id and attempt_id of a dispatch (section 3) that did not decode
// as a whole, if both are there and valid: enough to refuse it.
std::optional<AttemptRef> peek_task_ids(std::string_view json);

std::string encode_frame(const Frame& frame);
// A frame encoded without sent_at (as an outbox stores it) with sent_at
// added, the time of this transmission (section 4.1): encode_frame writes
// sent_at last when it is set, so the stamped text is exactly what
// encode_frame would write with it. `encoded` must come from encode_frame
// with an empty sent_at.
std::string stamp_sent_at(std::string encoded, std::string_view sent_at);
// A task.output frame (encoded, without sent_at) for a peer that does not
// take output.base64 (section 9): its bytes that are not UTF-8 become '?',
// one per byte, so offsets and lengths still hold (its digest cannot match).
// Any other frame is returned unchanged.
std::string without_base64(std::string encoded);

// Message ids an agent uses, stable across resends and restarts.
std::string started_message_id(std::string_view attempt_id);
std::string output_message_id(std::string_view attempt_id, StreamName stream, uint64_t seq);
std::string final_message_id(std::string_view attempt_id);
// The parts of an output_message_id(), if `message_id` is one.
struct OutputMessageRef {
  std::string attempt_id;
  StreamName stream = StreamName::kStdout;
  uint64_t seq = 0;
};
std::optional<OutputMessageRef> parse_output_message_id(std::string_view message_id);

// What makes two finals "the same" (docs/protocol.md, section 6).
std::string final_fingerprint(const FinalReport& report);

std::string_view to_string(AckedKind kind);

}  // namespace tether::protocol
