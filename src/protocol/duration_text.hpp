// Durations as operators type them on the command line: a count and a unit,
// "90s", "30m", "24h", "7d" (`tether-hub registration-token create
// --expires`, `tether audit --since`).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tether::protocol {

// Seconds, for a count from 1 to 100,000,000 followed by s, m, h or d;
// nothing for anything else (no sign, no spaces, no unit, 0).
std::optional<int64_t> parse_duration_s(std::string_view text);

}  // namespace tether::protocol
