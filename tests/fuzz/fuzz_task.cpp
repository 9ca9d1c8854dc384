// libFuzzer target: the task decoder (a long poll's answer, on the agent).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/task_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto task = tether::protocol::decode_task(text);
  if (task && (task->task_id.empty() || task->attempt_id.empty())) __builtin_trap();
  return 0;
}
