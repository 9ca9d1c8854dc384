#include "protocol/duration_text.hpp"

#include "protocol/wire_integer.hpp"

namespace tether::protocol {

std::optional<int64_t> parse_duration_s(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  const char unit = text.back();
  const int64_t scale = unit == 's'   ? 1
                        : unit == 'm' ? 60
                        : unit == 'h' ? 3600
                        : unit == 'd' ? 86400
                                      : 0;
  const auto count = parse_wire_integer(text.substr(0, text.size() - 1), 100'000'000);
  if (scale == 0 || !count || *count == 0) return std::nullopt;
  return static_cast<int64_t>(*count) * scale;
}

}  // namespace tether::protocol
