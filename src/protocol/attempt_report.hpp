// What an agent reports about one attempt: that it started, the bytes of its
// output streams, and how it ended. These are the payloads of the started,
// output and final frames (docs/protocol.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tether::protocol {

enum class StreamName : uint8_t { kStdout = 0, kStderr = 1 };

std::string_view to_string(StreamName stream);
std::optional<StreamName> parse_stream_name(std::string_view text);

// One frame's worth of a stream: `seq` counts from 1 per (attempt, stream);
// `offset` is the position of data[0] in the stream.
struct OutputChunk {
  StreamName stream = StreamName::kStdout;
  uint64_t seq = 0;
  uint64_t offset = 0;
  std::string data;
};

enum class AttemptStatus : uint8_t {
  kSucceeded,
  kFailed,
  kTimedOut,
  kCancelled,
  kRejected,
  kLost,
};

std::string_view to_string(AttemptStatus status);
std::optional<AttemptStatus> parse_attempt_status(std::string_view text);

struct StreamSummary {
  uint64_t bytes = 0;  // every byte the stream carried, including dropped ones
  std::string sha256;  // lowercase hex over those bytes
  // Bytes the control plane will not hold: sent as gaps, or undelivered.
  uint64_t dropped_bytes = 0;
  // Of dropped_bytes, those never sent at all, not even as gaps: the stream
  // could not be delivered past a frame the control plane refused for good,
  // or past seqs it wanted that were already deleted (docs/protocol.md 5).
  uint64_t undelivered_bytes = 0;
};

// How many secret values the agent replaced with [secret:NAME] in each
// stream (docs/protocol.md 4.1).
struct RedactionCounts {
  uint64_t stdout_count = 0;
  uint64_t stderr_count = 0;

  bool operator==(const RedactionCounts&) const = default;
};

struct StartedReport {
  int pid = 0;
  std::string started_at;
};

// How an attempt that ran was kept apart from the agent and from other
// tasks (docs/protocol.md, the final frame): the user it ran as and what
// contained its processes ("cgroup": its own cgroup v2; "subreaper": the
// task's init, a child subreaper, alone).
struct AttemptIsolation {
  std::string user;
  int64_t uid = 0;
  std::string containment;
};

struct FinalReport {
  AttemptStatus status = AttemptStatus::kFailed;
  std::optional<int64_t> exit_code;
  std::optional<int64_t> signal;  // the number of the signal that ended the process
  std::string started_at;
  std::string finished_at;
  StreamSummary stdout_summary;
  StreamSummary stderr_summary;
  std::string error;                          // empty: no error; otherwise why, for people
  std::optional<AttemptIsolation> isolation;  // nothing: the attempt never ran
  // Set when the task had secrets (even if none was found); absent otherwise.
  std::optional<RedactionCounts> redactions;
  // The task limit the kernel enforced by killing a process of the task
  // (task_limits.hpp): "memory_max" (its OOM killer); empty: none.
  std::string limit_exceeded;

  const StreamSummary& summary(StreamName stream) const {
    return stream == StreamName::kStdout ? stdout_summary : stderr_summary;
  }
  StreamSummary& summary(StreamName stream) {
    return stream == StreamName::kStdout ? stdout_summary : stderr_summary;
  }
};

}  // namespace tether::protocol
