// libFuzzer target: the CLI's Server-Sent Events parser, fed the input in
// pieces (the first byte sets the piece size) as a network would.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cli/sse_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t events = 0;
  tether::cli::SseParser parser([&events](const tether::cli::SseEvent&) { ++events; }, 4096);
  while (!rest.empty()) {
    const auto chunk = rest.substr(0, piece);
    rest.remove_prefix(chunk.size());
    if (!parser.feed(chunk)) break;
  }
  if (events > size) __builtin_trap();  // an event needs at least a blank line
  return 0;
}
