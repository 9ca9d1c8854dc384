// The writing half of frame_payloads.hpp: one writer per frame type.
#include "protocol/frame_payloads.hpp"
#include "protocol/report_json.hpp"

namespace tether::protocol {

namespace {

void write_attempt(JsonWriter& json, const AttemptRef& attempt) {
  json.field("task_id", attempt.task_id);
  json.field("attempt_id", attempt.attempt_id);
}

void write_body(JsonWriter& json, const AgentHello& hello) {
  json.field("version", hello.version);
  json.key("capabilities");
  json.begin_array();
  for (const auto& capability : hello.capabilities)
    json.string(capability);
  json.end_array();
  json.key("running");
  json.begin_array();
  for (const auto& attempt : hello.running) {
    json.begin_object();
    write_attempt(json, attempt);
    json.end_object();
  }
  json.end_array();
  json.key("outbox");
  json.begin_array();
  for (const auto& range : hello.outbox) {
    json.begin_object();
    write_attempt(json, range.attempt);
    json.field("stream", to_string(range.stream));
    json.field("first_seq", range.first_seq);
    json.field("last_seq", range.last_seq);
    json.end_object();
  }
  json.end_array();
  json.key("unacked_finals");
  json.begin_array();
  for (const auto& attempt : hello.unacked_finals) {
    json.begin_object();
    write_attempt(json, attempt);
    json.end_object();
  }
  json.end_array();
  if (hello.outbox_rows) json.field("outbox_rows", *hello.outbox_rows);
  if (hello.outbox_bytes) json.field("outbox_bytes", *hello.outbox_bytes);
  if (!hello.instance.empty()) json.field("instance", hello.instance);
  if (hello.partial) json.field("partial", true);
  if (!hello.labels.empty()) {
    json.key("labels");
    write_labels(json, hello.labels);
  }
}

void write_body(JsonWriter& json, const TaskStarted& started) {
  write_attempt(json, started.attempt);
  write_started_fields(json, started.report);
}

void write_body(JsonWriter& json, const TaskOutput& output) {
  write_attempt(json, output.attempt);
  write_output_fields(json, output.chunk);
}

void write_body(JsonWriter& json, const TaskOutputGap& gap) {
  write_attempt(json, gap.attempt);
  json.field("stream", to_string(gap.stream));
  json.field("seq", gap.seq);
  json.field("offset", gap.offset);
  json.field("length", gap.length);
}

void write_body(JsonWriter& json, const TaskFinal& final_frame) {
  write_attempt(json, final_frame.attempt);
  write_final_fields(json, final_frame.report);
}

void write_body(JsonWriter& json, const HubHelloAck& ack) {
  json.field("related_message_id", ack.related_message_id);
  json.field("version", ack.version);
  json.key("capabilities");
  json.begin_array();
  for (const auto& capability : ack.capabilities)
    json.string(capability);
  json.end_array();
  json.key("resume");
  json.begin_array();
  for (const auto& point : ack.resume) {
    json.begin_object();
    json.field("attempt_id", point.attempt_id);
    json.field("stream", to_string(point.stream));
    json.field("next_seq", point.next_seq);
    json.end_object();
  }
  json.end_array();
  json.key("finals_held");
  json.begin_array();
  for (const auto& attempt : ack.finals_held)
    json.string(attempt);
  json.end_array();
  json.key("discard");
  json.begin_array();
  for (const auto& notice : ack.discard) {
    json.begin_object();
    json.field("attempt_id", notice.attempt_id);
    json.field("reason", notice.reason);
    json.end_object();
  }
  json.end_array();
}

void write_body(JsonWriter& json, const Ack& ack) {
  json.field("attempt_id", ack.attempt_id);
  json.field("acked", to_string(ack.acked));
  if (ack.acked == AckedKind::kOutput) {
    json.field("stream", to_string(ack.stream));
    json.field("through_seq", ack.through_seq);
  } else {
    json.field("related_message_id", ack.related_message_id);
    if (ack.verified) json.field("verified", *ack.verified);
  }
}

void write_body(JsonWriter& json, const ErrorFrame& error) {
  json.field("code", error.code);
  json.field("message", error.message);
  json.field("retryable", error.retryable);
  if (!error.related_message_id.empty()) {
    json.field("related_message_id", error.related_message_id);
  }
  if (!error.attempt_id.empty()) json.field("attempt_id", error.attempt_id);
  if (error.stream) json.field("stream", to_string(*error.stream));
  if (error.highest_accepted_seq) {
    json.field("highest_accepted_seq", *error.highest_accepted_seq);
  }
  if (error.next_offset) json.field("next_offset", *error.next_offset);
}

void write_body(JsonWriter&, const HubWake&) {}

void write_body(JsonWriter& json, const TaskCancel& cancel) {
  write_attempt(json, cancel.attempt);
  json.field("reason", cancel.reason);
}

}  // namespace

void write_payload(JsonWriter& json, const FramePayload& payload) {
  std::visit([&](const auto& body) { write_body(json, body); }, payload);
}

}  // namespace tether::protocol
