// Small pieces every HTTP route of the hub uses: the path's segments, the
// error answer (docs/protocol.md 11: {"error":{"code","message","retryable"}})
// and integers from a query (section 2.1).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/web_server.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/wire_integer.hpp"

namespace tether::hub {

// "/api/v1/tasks/t-1" -> {"api", "v1", "tasks", "t-1"}; empty segments dropped.
std::vector<std::string> split_path(const std::string& path);
void respond_error(const std::shared_ptr<core::HttpExchange>& exchange, int status,
                   const std::string& code, const std::string& message, bool retryable = false);
// The same for a code of the closed set: its HTTP status and retryable flag
// come from protocol/error_codes.hpp.
void respond_error(const std::shared_ptr<core::HttpExchange>& exchange, protocol::ErrorCode code,
                   const std::string& message);
// A number from the client: 0 to 2^63-1, or `max`; false (out untouched) otherwise.
bool parse_uint(const std::string& text, uint64_t& out, uint64_t max = protocol::kMaxWireInteger);
// The "reason" of a cancel's body ({"reason": "..."}, optional; an empty
// body or reason gives `fallback`). Errors ("invalid_field") name the field.
Result<std::string> cancel_reason(const std::string& body, std::string fallback);

}  // namespace tether::hub
