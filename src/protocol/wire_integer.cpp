#include "protocol/wire_integer.hpp"

#include <charconv>

namespace tether::protocol {

std::optional<uint64_t> parse_wire_integer(std::string_view text, uint64_t max) {
  // from_chars takes no sign for unsigned types but stops at the first
  // non-digit: the whole text must be digits.
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (value > max) return std::nullopt;
  return value;
}

}  // namespace tether::protocol
