// The last lines of a task's output, for the summary of a fan-out run
// (docs/cli.md, Fleets): read from the end of the stored stream
// (GET /api/v1/tasks/{id}/output?stream=S&offset=N), never all of it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cli/hub_client.hpp"
#include "core/result.hpp"

namespace tether::cli {

// How much of a stream's end is read to find its last lines.
inline constexpr uint64_t kTailWindowBytes = 16 * 1024;

// The last `count` lines of `bytes`, oldest first, without their newlines.
// A last line without a newline counts; an empty last line after the final
// newline does not. When `from_start` is false, `bytes` begins somewhere in
// the middle of the stream, and its first line (cut off) is never taken.
std::vector<std::string> last_lines(std::string_view bytes, size_t count, bool from_start);

// The last `count` lines of the task's `stream` ("stdout" or "stderr"),
// which holds `size` bytes (as the run's view says). Errors: the hub's
// refusal or an unreachable hub.
Result<std::vector<std::string>> fetch_last_lines(HubClient& client, const std::string& task_id,
                                                  const std::string& stream, uint64_t size,
                                                  size_t count);

}  // namespace tether::cli
