// JSON fields of attempt reports, shared by the frame codec and the hub's
// operator API and SSE events: an output chunk's data is the text itself
// when it is valid UTF-8 and base64 otherwise.
#pragma once

#include "core/result.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

inline constexpr int kProtocolVersion = 1;

// Each writes fields into an object the caller has opened.
void write_started_fields(JsonWriter& json, const StartedReport& started);
void write_output_fields(JsonWriter& json, const OutputChunk& chunk);
void write_final_fields(JsonWriter& json, const FinalReport& final_report);

// Each reads the fields written above; errors name the field.
Result<StreamName> read_stream(const JsonObjectReader& object, const char* field);
Result<OutputChunk> read_output_fields(const JsonObjectReader& object);
Result<FinalReport> read_final_fields(const JsonObjectReader& object);

// The final report alone, as a JSON object (stored by the hub).
std::string encode_final_report(const FinalReport& final_report);
Result<FinalReport> decode_final_report(std::string_view json);

}  // namespace tether::protocol
