#include "protocol/attempt_report.hpp"

namespace tether::protocol {

std::string_view to_string(StreamName stream) {
  return stream == StreamName::kStdout ? "stdout" : "stderr";
}

std::optional<StreamName> parse_stream_name(std::string_view text) {
  if (text == "stdout") return StreamName::kStdout;
  if (text == "stderr") return StreamName::kStderr;
  return std::nullopt;
}

std::string_view to_string(AttemptStatus status) {
  switch (status) {
    case AttemptStatus::kSucceeded:
      return "succeeded";
    case AttemptStatus::kFailed:
      return "failed";
    case AttemptStatus::kTimedOut:
      return "timed_out";
    case AttemptStatus::kCancelled:
      return "cancelled";
    case AttemptStatus::kRejected:
      return "rejected";
    case AttemptStatus::kLost:
      return "lost";
  }
  return "failed";
}

std::optional<AttemptStatus> parse_attempt_status(std::string_view text) {
  for (auto status : {AttemptStatus::kSucceeded, AttemptStatus::kFailed, AttemptStatus::kTimedOut,
                      AttemptStatus::kCancelled, AttemptStatus::kRejected, AttemptStatus::kLost}) {
    if (to_string(status) == text) return status;
  }
  return std::nullopt;
}

}  // namespace tether::protocol
