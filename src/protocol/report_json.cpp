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
  if (summary.undelivered_bytes > 0) json.field("undelivered_bytes", summary.undelivered_bytes);
  json.end_object();
}

bool is_sha256_hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<StreamSummary> read_summary(const JsonObjectReader& parent, const char* field) {
  TETHER_TRY(object, parent.required_object(field));
  JsonObjectReader summary_reader(**object, parent.path() + "." + field);
  StreamSummary summary;
  TETHER_TRY(bytes, summary_reader.required_uint("bytes"));
  summary.bytes = *bytes;
  TETHER_TRY(sha, summary_reader.required_string("sha256"));
  if (!is_sha256_hex(*sha)) {
    return summary_reader.field_error("sha256", "expected 64 lowercase hex digits");
  }
  summary.sha256 = std::move(*sha);
  TETHER_TRY(dropped, summary_reader.optional_uint("dropped_bytes"));
  summary.dropped_bytes = dropped->value_or(0);
  TETHER_TRY(undelivered, summary_reader.optional_uint("undelivered_bytes"));
  summary.undelivered_bytes = undelivered->value_or(0);
  if (summary.undelivered_bytes > summary.dropped_bytes) {
    return summary_reader.field_error("undelivered_bytes", "larger than dropped_bytes");
  }
  if (summary.dropped_bytes > summary.bytes) {
    return summary_reader.field_error("dropped_bytes", "larger than bytes");
  }
  return summary;
}

// "redactions": {"stdout": N, "stderr": M}, optional.
Result<std::optional<RedactionCounts>> read_redactions(const JsonObjectReader& parent) {
  TETHER_TRY(object, parent.optional_object("redactions"));
  if (!*object) return std::optional<RedactionCounts>();
  JsonObjectReader counts(**object, parent.path() + ".redactions");
  RedactionCounts redactions;
  TETHER_TRY(out, counts.required_uint("stdout"));
  redactions.stdout_count = *out;
  TETHER_TRY(err, counts.required_uint("stderr"));
  redactions.stderr_count = *err;
  return std::optional<RedactionCounts>(redactions);
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
  if (final_report.isolation) {
    json.key("isolation");
    json.begin_object();
    json.field("user", final_report.isolation->user);
    json.field("uid", final_report.isolation->uid);
    json.field("containment", final_report.isolation->containment);
    json.end_object();
  }
  if (final_report.redactions) {
    json.key("redactions");
    json.begin_object();
    json.field("stdout", final_report.redactions->stdout_count);
    json.field("stderr", final_report.redactions->stderr_count);
    json.end_object();
  }
  if (!final_report.limit_exceeded.empty()) {
    json.field("limit_exceeded", final_report.limit_exceeded);
  }
}

namespace {

Result<std::optional<AttemptIsolation>> read_isolation(const JsonObjectReader& object) {
  TETHER_TRY(value, object.optional_object("isolation"));
  if (!*value) return std::optional<AttemptIsolation>();
  JsonObjectReader reader(**value, "isolation");
  AttemptIsolation isolation;
  TETHER_TRY(user, reader.required_string("user"));
  isolation.user = std::move(*user);
  TETHER_TRY(uid, reader.optional_int("uid"));
  if (!*uid || **uid < 0) return reader.field_error("uid", "expected a uid (0 or more)");
  isolation.uid = **uid;
  TETHER_TRY(containment, reader.required_string("containment"));
  if (*containment != "cgroup" && *containment != "subreaper") {
    return reader.field_error("containment", "expected \"cgroup\" or \"subreaper\"");
  }
  isolation.containment = std::move(*containment);
  return std::optional<AttemptIsolation>(std::move(isolation));
}

}  // namespace

Result<StreamName> read_stream(const JsonObjectReader& object, const char* field) {
  TETHER_TRY(text, object.required_string(field));
  auto stream = parse_stream_name(*text);
  if (!stream) return object.field_error(field, "expected \"stdout\" or \"stderr\"");
  return *stream;
}

Result<OutputChunk> read_output_fields(const JsonObjectReader& object) {
  OutputChunk chunk;
  TETHER_TRY(stream, read_stream(object, "stream"));
  chunk.stream = *stream;
  TETHER_TRY(seq, object.required_uint("seq"));
  if (*seq == 0) return object.field_error("seq", "must be at least 1");
  chunk.seq = *seq;
  TETHER_TRY(offset, object.required_uint("offset"));
  chunk.offset = *offset;
  TETHER_TRY(data, object.required_string("data"));
  TETHER_TRY(encoding, object.optional_string("encoding"));
  const std::string how = encoding->value_or("utf8");
  if (how == "utf8") {
    chunk.data = std::move(*data);
  } else if (how == "base64") {
    auto decoded = base64_decode(*data);
    if (!decoded) return object.field_error("data", decoded.error().message);
    chunk.data = std::move(*decoded);
  } else {
    return object.field_error("encoding", "expected \"utf8\" or \"base64\"");
  }
  if (chunk.data.empty()) return object.field_error("data", "must not be empty");
  return chunk;
}

Result<FinalReport> read_final_fields(const JsonObjectReader& object) {
  FinalReport report;
  TETHER_TRY(status_text, object.required_string("status"));
  auto status = parse_attempt_status(*status_text);
  if (!status) {
    return object.field_error("status",
                              "expected succeeded, failed, timed_out, cancelled, rejected or lost");
  }
  report.status = *status;
  TETHER_TRY(exit_code, object.optional_int("exit_code"));
  report.exit_code = *exit_code;
  TETHER_TRY(signal, object.optional_int("signal"));
  report.signal = *signal;
  if (report.signal && (*report.signal < 1 || *report.signal > 64)) {
    return object.field_error("signal", "expected a signal number from 1 to 64");
  }
  TETHER_TRY(started_at, object.optional_string("started_at"));
  report.started_at = started_at->value_or("");
  TETHER_TRY(finished_at, object.optional_string("finished_at"));
  report.finished_at = finished_at->value_or("");
  TETHER_TRY(out, read_summary(object, "stdout"));
  report.stdout_summary = std::move(*out);
  TETHER_TRY(err, read_summary(object, "stderr"));
  report.stderr_summary = std::move(*err);
  TETHER_TRY(error, object.optional_string("error"));
  report.error = error->value_or("");
  TETHER_TRY(isolation, read_isolation(object));
  report.isolation = std::move(*isolation);
  TETHER_TRY(redactions, read_redactions(object));
  report.redactions = *redactions;
  TETHER_TRY(limit, object.optional_string("limit_exceeded"));
  report.limit_exceeded = limit->value_or("");
  return report;
}

std::string encode_final_report(const FinalReport& final_report) {
  JsonWriter json;
  json.begin_object();
  write_final_fields(json, final_report);
  json.end_object();
  return json.str();
}

Result<FinalReport> decode_final_report(std::string_view json) {
  TETHER_TRY(document, parse_json_object(json, "final"));
  return read_final_fields(JsonObjectReader(*document, "final"));
}

}  // namespace tether::protocol
