// Integers that cross the wire: in JSON frames and bodies, in query
// parameters (`offset`, `wait`, `limit`) and in `Last-Event-ID`. Every one
// is from 0 to 2^63-1 (docs/protocol.md 2.1): the range both ends store
// (SQLite's INTEGER, int64_t) without a sign turning up on the way. Larger
// values are refused with a 400 or an `invalid_frame`, never wrapped.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tether::protocol {

inline constexpr uint64_t kMaxWireInteger = 9'223'372'036'854'775'807ull;  // 2^63-1

// Decimal digits only (no sign, no spaces, no leading "+"), 1 to 19 of
// them, at most `max`; nothing for anything else.
std::optional<uint64_t> parse_wire_integer(std::string_view text, uint64_t max = kMaxWireInteger);

}  // namespace tether::protocol
