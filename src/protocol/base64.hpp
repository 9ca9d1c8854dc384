// Standard base64 (RFC 4648, with padding) for output chunks that are not UTF-8.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::protocol {

std::string base64_encode(std::string_view bytes);

// Rejects characters outside the alphabet, bad padding and bad length, with
// the offset of the first bad character in the message.
Result<std::string> base64_decode(std::string_view text);

}  // namespace tether::protocol
