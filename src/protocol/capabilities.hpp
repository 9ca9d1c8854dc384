// Capabilities of protocol v1 (docs/protocol.md, section 9): optional
// features each side announces in agent.hello and hub.hello_ack. A side
// uses a feature only if both listed it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tether::protocol {

// task.output frames whose data is base64 (bytes that are not UTF-8).
inline constexpr std::string_view kCapabilityOutputBase64 = "output.base64";
// task.output_gap frames (output the agent had to drop).
inline constexpr std::string_view kCapabilityOutputGap = "output.gap";
// PUT /api/v1/attempts/{id}/final (section 7).
inline constexpr std::string_view kCapabilityFinalHttp = "final.http";
// Several frames in one WebSocket message, both ways (section 4.4).
inline constexpr std::string_view kCapabilityFramesBatch = "frames.batch";

// What both sides agreed on for one session.
struct Capabilities {
  bool output_base64 = false;
  bool output_gap = false;
  bool final_http = false;
  bool frames_batch = false;

  // The features in `listed` that this implementation knows; unknown names
  // are ignored (a newer peer may list more).
  static Capabilities from(const std::vector<std::string>& listed);
  // Every feature (before a peer has said anything, an agent assumes all).
  static Capabilities all();
  std::vector<std::string> names() const;
};

// What this implementation offers, in hello and hello_ack.
std::vector<std::string> agent_capabilities();
std::vector<std::string> hub_capabilities();

}  // namespace tether::protocol
