// The error codes of the protocol and the operator API: a closed set
// (docs/protocol.md section 10, and section 11 for the operator API's own).
// Every code the hub or the agent produces or acts on is named here once;
// the wire carries them as snake_case text.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/frames.hpp"

namespace tether::protocol {

enum class ErrorCode {
  // section 10: the channel and the agent endpoints
  kInvalidFrame,
  kUnsupportedVersion,
  kUnknownType,
  kFrameTooLarge,
  kHelloRequired,
  kUnknownAttempt,
  kAttemptDiscarded,
  kAttemptFinished,
  kOutputSequenceGap,
  kOutputOffsetMismatch,
  kOutputIncomplete,
  kFinalConflict,
  kStorageUnavailable,
  kUnauthorized,
  kForbidden,
  kBodyTooLarge,
  kRateLimited,
  kUnavailable,
  // section 11: the operator API
  kInvalidField,
  kNotFound,
  kAlreadyFinished,
  kTargetBusy,
  kUnknownAgent,
  kAgentExists,
  kTooManyAuthFailures,
};

std::string_view to_string(ErrorCode code);
// Nothing for a code outside the set (a newer peer's): treat it by its
// `retryable` flag alone.
std::optional<ErrorCode> parse_error_code(std::string_view text);
// Whether section 10 says the same request may succeed later.
bool is_retryable(ErrorCode code);
// The HTTP status that carries the code (section 7 and 11; 400 by default).
int http_status(ErrorCode code);

// An error frame (section 4.1, error) with the code's retryable flag.
ErrorFrame error_frame(ErrorCode code, std::string message, std::string related_message_id = {});
// The code of a received error frame, if it is one of the set.
inline std::optional<ErrorCode> code_of(const ErrorFrame& error) {
  return parse_error_code(error.code);
}

}  // namespace tether::protocol
