// libFuzzer target: the hub's HTTP bodies. The first byte picks the route:
// POST /api/v1/tasks (decode_submit), PUT .../final (a frame), or POST
// .../cancel (a JSON object with an optional reason).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hub/hub_api.hpp"
#include "protocol/frames.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/operator_api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto request = tether::protocol::decode_submit(body);
      if (request && request->agent.empty()) __builtin_trap();
      break;
    }
    case 1:
      (void)tether::protocol::decode_frame(body);
      break;
    default: {
      auto document = tether::protocol::parse_json_object(body, "cancel");
      if (document) {
        tether::protocol::JsonObjectReader cancel(*document, "cancel");
        (void)cancel.optional_string("reason");
      }
      break;
    }
  }
  return 0;
}
