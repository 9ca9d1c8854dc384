// libFuzzer target: the agent's config parser (a file an operator edits).
// A bad line must be an error naming the file and line, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/agent_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tether::agent::AgentConfig config;
  auto applied = tether::agent::apply_config_text(config, text, "fuzz.conf");
  if (!applied && applied.error().message.rfind("fuzz.conf:", 0) != 0) __builtin_trap();
  return 0;
}
