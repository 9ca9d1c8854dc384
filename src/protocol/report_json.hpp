// JSON for attempt reports, as `tether-agent exec` prints them: one object per
// frame with "v", "type", the task and attempt ids, and the payload.
//
// An output chunk's data is the text itself when the chunk is valid UTF-8, and
// base64 with "encoding": "base64" otherwise, so text stays greppable and
// binary stays exact.
#pragma once

#include <string>

#include "protocol/attempt_report.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

inline constexpr int kProtocolVersion = 1;

struct AttemptIds {
  std::string task_id;
  std::string attempt_id;
};

// Each writes the payload fields into an object the caller has opened.
void write_started_fields(JsonWriter& json, const StartedReport& started);
void write_output_fields(JsonWriter& json, const OutputChunk& chunk);
void write_final_fields(JsonWriter& json, const FinalReport& final_report);

std::string encode_started(const AttemptIds& ids, const StartedReport& started);
std::string encode_output(const AttemptIds& ids, const OutputChunk& chunk);
std::string encode_final(const AttemptIds& ids, const FinalReport& final_report);

}  // namespace tether::protocol
