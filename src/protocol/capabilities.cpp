#include "protocol/capabilities.hpp"

namespace tether::protocol {

Capabilities Capabilities::from(const std::vector<std::string>& listed) {
  Capabilities agreed;
  for (const auto& name : listed) {
    if (name == kCapabilityOutputBase64) agreed.output_base64 = true;
    if (name == kCapabilityOutputGap) agreed.output_gap = true;
    if (name == kCapabilityFinalHttp) agreed.final_http = true;
    if (name == kCapabilityFramesBatch) agreed.frames_batch = true;
  }
  return agreed;
}

Capabilities Capabilities::all() {
  return Capabilities{true, true, true, true};
}

std::vector<std::string> Capabilities::names() const {
  std::vector<std::string> names;
  if (output_base64) names.emplace_back(kCapabilityOutputBase64);
  if (output_gap) names.emplace_back(kCapabilityOutputGap);
  if (final_http) names.emplace_back(kCapabilityFinalHttp);
  if (frames_batch) names.emplace_back(kCapabilityFramesBatch);
  return names;
}

std::vector<std::string> agent_capabilities() {
  return Capabilities::all().names();
}

std::vector<std::string> hub_capabilities() {
  return Capabilities::all().names();
}

}  // namespace tether::protocol
