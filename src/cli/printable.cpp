#include "cli/printable.hpp"

#include <cstdio>

#include "protocol/utf8.hpp"

namespace tether::cli {

namespace {

// Length of the valid UTF-8 sequence at `text[at]`, or 0.
size_t sequence_length(std::string_view text, size_t at) {
  const auto byte = static_cast<unsigned char>(text[at]);
  const size_t length = byte < 0x80           ? 1
                        : (byte >> 5) == 0x6  ? 2
                        : (byte >> 4) == 0xe  ? 3
                        : (byte >> 3) == 0x1e ? 4
                                              : 0;
  if (length == 0 || at + length > text.size()) return 0;
  return protocol::is_valid_utf8(text.substr(at, length)) ? length : 0;
}

std::string hex_escape(const char* format, unsigned value) {
  char buffer[12];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t at = 0; at < text.size();) {
    const auto byte = static_cast<unsigned char>(text[at]);
    const size_t length = sequence_length(text, at);
    if (length == 0) {
      out += hex_escape("\\x%02x", byte);
      ++at;
      continue;
    }
    if (length == 1) {
      if (byte == '\n') {
        out += "\\n";
      } else if (byte == '\t') {
        out += "\\t";
      } else if (byte == 0x1b) {
        out += "\\e";
      } else if (byte < 0x20 || byte == 0x7f) {
        out += hex_escape("\\x%02x", byte);
      } else {
        out.push_back(static_cast<char>(byte));
      }
    } else if (length == 2 && byte == 0xc2 && static_cast<unsigned char>(text[at + 1]) < 0xa0) {
      // U+0080 to U+009F: C1 controls (0x9b is CSI on many terminals).
      out += hex_escape("\\u%04x", static_cast<unsigned char>(text[at + 1]));
    } else {
      out.append(text.substr(at, length));
    }
    at += length;
  }
  return out;
}

std::string printable_json(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  for (size_t at = 0; at < json.size(); ++at) {
    const auto byte = static_cast<unsigned char>(json[at]);
    if (byte == 0x7f) {
      out += "\\u007f";
    } else if (byte == 0xc2 && at + 1 < json.size() &&
               static_cast<unsigned char>(json[at + 1]) >= 0x80 &&
               static_cast<unsigned char>(json[at + 1]) < 0xa0) {
      out += hex_escape("\\u%04x", static_cast<unsigned char>(json[++at]));
    } else if (byte < 0x20 && byte != '\n' && byte != '\t' && byte != '\r') {
      out += hex_escape("\\u%04x", byte);  // not valid in JSON text anyway
    } else {
      out.push_back(static_cast<char>(byte));
    }
  }
  return out;
}

}  // namespace tether::cli
