// UTF-8 checks used where output bytes become frames: a chunk is sent as JSON
// text when it is valid UTF-8 and as base64 otherwise, and chunk boundaries
// must not cut a multi-byte sequence in two.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tether::protocol {

// True when `bytes` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

// How many bytes at the end of `bytes` are the start of a well-formed UTF-8
// sequence that is not complete yet (0 to 3). Bytes that can never become
// valid UTF-8 are not held back: binary output passes through as it came.
size_t incomplete_utf8_tail(std::string_view bytes);

// `bytes` with every byte that is not part of valid UTF-8 replaced by
// `replacement` (one for one: lengths and offsets stay). For a control
// plane without output.base64 (docs/protocol.md 9).
std::string with_invalid_utf8_replaced(std::string_view bytes, char replacement);

}  // namespace tether::protocol
