// libFuzzer target: the frame decoder (every WebSocket message and HTTP
// final an agent or a hub receives). Whatever decodes must encode, and
// decode again to the same frame type and id.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/frames.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto frame = tether::protocol::decode_frame(text);
  if (!frame) return 0;
  const std::string again = tether::protocol::encode_frame(*frame);
  auto round_trip = tether::protocol::decode_frame(again);
  if (!round_trip || round_trip->message_id != frame->message_id ||
      round_trip->payload.index() != frame->payload.index()) {
    __builtin_trap();
  }
  return 0;
}
