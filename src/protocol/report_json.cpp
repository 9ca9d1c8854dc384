#include "protocol/report_json.hpp"

#include "protocol/base64.hpp"
#include "protocol/utf8.hpp"

namespace tether::protocol {

namespace {

void write_summary(JsonWriter& json, std::string_view name, const StreamSummary& summary) {
  json.key(name);
  json.begin_object();
  json.field("bytes", summary.bytes);
  json.field("sha256", summary.sha256);
  json.field("dropped_bytes", summary.dropped_bytes);
  json.end_object();
}

void begin_frame(JsonWriter& json, std::string_view type, const AttemptIds& ids) {
  json.begin_object();
  json.field("v", kProtocolVersion);
  json.field("type", type);
  json.field("task_id", ids.task_id);
  json.field("attempt_id", ids.attempt_id);
}

}  // namespace

void write_started_fields(JsonWriter& json, const StartedReport& started) {
  json.field("pid", started.pid);
  json.field("started_at", started.started_at);
}

void write_output_fields(JsonWriter& json, const OutputChunk& chunk) {
  json.field("stream", to_string(chunk.stream));
  json.field("seq", chunk.seq);
  json.field("offset", chunk.offset);
  if (is_valid_utf8(chunk.data)) {
    json.field("data", chunk.data);
    json.field("encoding", "utf8");
  } else {
    json.field("data", base64_encode(chunk.data));
    json.field("encoding", "base64");
  }
}

void write_final_fields(JsonWriter& json, const FinalReport& final_report) {
  json.field("status", to_string(final_report.status));
  json.field("exit_code", final_report.exit_code);
  json.field("signal", final_report.signal);
  json.field("started_at", final_report.started_at);
  json.field("finished_at", final_report.finished_at);
  write_summary(json, "stdout", final_report.stdout_summary);
  write_summary(json, "stderr", final_report.stderr_summary);
  if (final_report.error.empty()) {
    json.key("error");
    json.null();
  } else {
    json.field("error", final_report.error);
  }
}

std::string encode_started(const AttemptIds& ids, const StartedReport& started) {
  JsonWriter json;
  begin_frame(json, "task.started", ids);
  write_started_fields(json, started);
  json.end_object();
  return json.str();
}

std::string encode_output(const AttemptIds& ids, const OutputChunk& chunk) {
  JsonWriter json;
  begin_frame(json, "task.output", ids);
  write_output_fields(json, chunk);
  json.end_object();
  return json.str();
}

std::string encode_final(const AttemptIds& ids, const FinalReport& final_report) {
  JsonWriter json;
  begin_frame(json, "task.final", ids);
  write_final_fields(json, final_report);
  json.end_object();
  return json.str();
}

}  // namespace tether::protocol
