#include "protocol/error_codes.hpp"

#include <array>
#include <utility>

namespace tether::protocol {

namespace {

struct CodeFacts {
  ErrorCode code;
  std::string_view text;
  bool retryable;
  int http_status;
};

// Section 10's table, and section 11's codes.
constexpr std::array kCodes = {
    CodeFacts{ErrorCode::kInvalidFrame, "invalid_frame", false, 400},
    CodeFacts{ErrorCode::kUnsupportedVersion, "unsupported_version", false, 400},
    CodeFacts{ErrorCode::kUnknownType, "unknown_type", false, 400},
    CodeFacts{ErrorCode::kFrameTooLarge, "frame_too_large", false, 413},
    CodeFacts{ErrorCode::kHelloRequired, "hello_required", true, 400},
    CodeFacts{ErrorCode::kUnknownAttempt, "unknown_attempt", false, 404},
    CodeFacts{ErrorCode::kAttemptDiscarded, "attempt_discarded", false, 410},
    CodeFacts{ErrorCode::kAttemptFinished, "attempt_finished", false, 400},
    CodeFacts{ErrorCode::kOutputSequenceGap, "output_sequence_gap", true, 400},
    CodeFacts{ErrorCode::kOutputOffsetMismatch, "output_offset_mismatch", false, 400},
    CodeFacts{ErrorCode::kOutputIncomplete, "output_incomplete", true, 409},
    CodeFacts{ErrorCode::kFinalConflict, "final_conflict", false, 422},
    CodeFacts{ErrorCode::kStorageUnavailable, "storage_unavailable", true, 503},
    CodeFacts{ErrorCode::kUnauthorized, "unauthorized", false, 401},
    CodeFacts{ErrorCode::kForbidden, "forbidden", false, 403},
    CodeFacts{ErrorCode::kBodyTooLarge, "body_too_large", false, 413},
    CodeFacts{ErrorCode::kRateLimited, "rate_limited", true, 429},
    CodeFacts{ErrorCode::kUnavailable, "unavailable", true, 503},
    CodeFacts{ErrorCode::kInvalidField, "invalid_field", false, 400},
    CodeFacts{ErrorCode::kNotFound, "not_found", false, 404},
    CodeFacts{ErrorCode::kAlreadyFinished, "already_finished", false, 409},
    CodeFacts{ErrorCode::kTargetBusy, "target_busy", false, 409},
    CodeFacts{ErrorCode::kUnknownAgent, "unknown_agent", false, 404},
    CodeFacts{ErrorCode::kAgentExists, "agent_exists", false, 409},
    CodeFacts{ErrorCode::kTooManyAuthFailures, "too_many_auth_failures", true, 429},
};

const CodeFacts& facts(ErrorCode code) {
  for (const auto& entry : kCodes) {
    if (entry.code == code) return entry;
  }
  return kCodes[0];  // unreachable: every enumerator is in the table
}

}  // namespace

std::string_view to_string(ErrorCode code) {
  return facts(code).text;
}

std::optional<ErrorCode> parse_error_code(std::string_view text) {
  for (const auto& entry : kCodes) {
    if (entry.text == text) return entry.code;
  }
  return std::nullopt;
}

bool is_retryable(ErrorCode code) {
  return facts(code).retryable;
}

int http_status(ErrorCode code) {
  return facts(code).http_status;
}

ErrorFrame error_frame(ErrorCode code, std::string message, std::string related_message_id) {
  ErrorFrame error;
  error.code = std::string(to_string(code));
  error.message = std::move(message);
  error.retryable = is_retryable(code);
  error.related_message_id = std::move(related_message_id);
  return error;
}

}  // namespace tether::protocol
