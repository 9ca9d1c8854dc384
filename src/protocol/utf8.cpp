#include "protocol/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace tether::protocol {

namespace {

// Length of the sequence a lead byte starts, or 0 if it cannot lead one.
size_t sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// The second byte's range depends on the lead (RFC 3629 table): this is what
// rules out overlongs, surrogates and code points above U+10FFFF.
bool second_byte_valid(uint8_t lead, uint8_t second) {
  switch (lead) {
    case 0xE0:
      return second >= 0xA0 && second <= 0xBF;
    case 0xED:
      return second >= 0x80 && second <= 0x9F;
    case 0xF0:
      return second >= 0x90 && second <= 0xBF;
    case 0xF4:
      return second >= 0x80 && second <= 0x8F;
    default:
      return second >= 0x80 && second <= 0xBF;
  }
}

bool is_continuation(uint8_t byte) {
  return (byte & 0xC0) == 0x80;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    // Fast path: eight ASCII bytes at a time, the common case for logs.
    if (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    const uint8_t lead = *p;
    const size_t length = sequence_length(lead);
    if (length == 0) return false;
    if (length == 1) {
      ++p;
      continue;
    }
    if (static_cast<size_t>(end - p) < length) return false;
    if (!second_byte_valid(lead, p[1])) return false;
    for (size_t i = 2; i < length; ++i) {
      if (!is_continuation(p[i])) return false;
    }
    p += length;
  }
  return true;
}

size_t incomplete_utf8_tail(std::string_view bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  for (size_t back = 1; back <= 3 && back <= size; ++back) {
    const uint8_t byte = data[size - back];
    if (is_continuation(byte)) continue;
    const size_t length = sequence_length(byte);
    if (length <= back) return 0;  // ASCII, an invalid lead, or already complete
    if (back >= 2 && !second_byte_valid(byte, data[size - back + 1])) return 0;
    return back;
  }
  return 0;
}

std::string with_invalid_utf8_replaced(std::string_view bytes, char replacement) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t at = 0; at < bytes.size();) {
    const auto lead = static_cast<unsigned char>(bytes[at]);
    size_t length = lead < 0x80           ? 1
                    : (lead >> 5) == 0x6  ? 2
                    : (lead >> 4) == 0xe  ? 3
                    : (lead >> 3) == 0x1e ? 4
                                          : 0;
    if (length != 0 && at + length <= bytes.size() && is_valid_utf8(bytes.substr(at, length))) {
      out.append(bytes.substr(at, length));
      at += length;
    } else {
      out.push_back(replacement);
      ++at;
    }
  }
  return out;
}

}  // namespace tether::protocol
