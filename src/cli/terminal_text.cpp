#include "cli/terminal_text.hpp"

#include <cstdio>

namespace tether::cli {

namespace {

// The code point at `text[at]` and its length in bytes; length 1 and the
// byte itself for anything that is not a well-formed sequence.
std::pair<uint32_t, size_t> decode_at(std::string_view text, size_t at) {
  const auto byte = static_cast<unsigned char>(text[at]);
  const size_t length = byte < 0x80           ? 1
                        : (byte >> 5) == 0x6  ? 2
                        : (byte >> 4) == 0xe  ? 3
                        : (byte >> 3) == 0x1e ? 4
                                              : 0;
  if (length <= 1 || at + length > text.size()) return {byte, 1};
  uint32_t code = byte & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[at + i]);
    if ((next & 0xc0) != 0x80) return {byte, 1};
    code = (code << 6) | (next & 0x3f);
  }
  return {code, length};
}

// Columns of one code point (see display_width).
size_t code_point_width(uint32_t code) {
  if ((code >= 0x0300 && code <= 0x036f) || (code >= 0x1ab0 && code <= 0x1aff) ||
      (code >= 0x1dc0 && code <= 0x1dff) || (code >= 0x20d0 && code <= 0x20ff) ||
      (code >= 0xfe20 && code <= 0xfe2f) || code == 0x200b || code == 0x200c || code == 0x200d ||
      (code >= 0xfe00 && code <= 0xfe0f)) {
    return 0;  // combining marks, zero-width spaces and joiners, variation selectors
  }
  const bool wide = (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0x303e) ||
                    (code >= 0x3041 && code <= 0x33ff) || (code >= 0x3400 && code <= 0x4dbf) ||
                    (code >= 0x4e00 && code <= 0x9fff) || (code >= 0xa000 && code <= 0xa4cf) ||
                    (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) ||
                    (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
                    (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x1f300 && code <= 0x1f64f) ||
                    (code >= 0x1f900 && code <= 0x1f9ff) || (code >= 0x20000 && code <= 0x3fffd);
  return wide ? 2 : 1;
}

}  // namespace

std::string human_bytes(uint64_t bytes) {
  char text[32];
  if (bytes < 1024) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < (1ull << 20)) {
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
  } else if (bytes < (1ull << 30)) {
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  } else {
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  }
  return text;
}

size_t display_width(std::string_view text) {
  size_t width = 0;
  for (size_t at = 0; at < text.size();) {
    auto [code, length] = decode_at(text, at);
    width += code_point_width(code);
    at += length;
  }
  return width;
}

std::string clip_to_width(std::string_view text, size_t columns) {
  if (columns == 0) return "";
  if (display_width(text) <= columns) return std::string(text);
  // Room for the "…" that shows the cut.
  std::string out;
  size_t width = 0;
  for (size_t at = 0; at < text.size();) {
    auto [code, length] = decode_at(text, at);
    const size_t cells = code_point_width(code);
    if (width + cells > columns - 1) break;
    out.append(text.substr(at, length));
    width += cells;
    at += length;
  }
  return out + "…";
}

std::string fit_to_width(std::string_view text, size_t columns, bool align_right) {
  std::string clipped = clip_to_width(text, columns);
  const std::string padding(columns - display_width(clipped), ' ');
  return align_right ? padding + clipped : clipped + padding;
}

}  // namespace tether::cli
