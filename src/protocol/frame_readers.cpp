// The reading half of frame_payloads.hpp: a table of one reader per frame
// type; frame_writers.cpp holds the writers.
#include "protocol/frame_payloads.hpp"

#include "protocol/report_json.hpp"
#include "protocol/task_spec.hpp"

namespace tether::protocol {

Error invalid_frame(const std::string& message) {
  return make_error(Errc::kProtocol, "invalid_frame", message);
}

// Field errors from the readers carry code "invalid_field"; frames report
// them as invalid_frame with the same message.
Error as_frame_error(const Error& error) {
  return error.code == "invalid_field" || error.code == "malformed_json"
             ? invalid_frame(error.message)
             : error;
}

bool is_message_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxMessageIdLength) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

Result<std::string> read_id(const JsonObjectReader& object, const char* field) {
  TETHER_TRY(id, object.required_string(field));
  if (!is_valid_id(*id)) {
    return object.field_error(field, "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
  }
  return std::move(*id);
}

// Reads an array of objects, each through `read_one`, with a size cap.
template <class T, class ReadOne>
Result<std::vector<T>> read_array(const JsonObjectReader& object, const char* field, bool required,
                                  size_t limit, ReadOne read_one) {
  std::vector<T> items;
  const auto* value = object.find(field);
  if (!value || value->IsNull()) {
    if (required) return object.field_error(field, "is required");
    return items;
  }
  if (!value->IsArray()) {
    return object.field_error(field,
                              std::string("expected an array, got ") + json_type_name(*value));
  }
  if (value->Size() > limit) {
    return object.field_error(field, "more than " + std::to_string(limit) + " entries");
  }
  size_t index = 0;
  for (const auto& entry : value->GetArray()) {
    const std::string path = object.path() + "." + field + "[" + std::to_string(index++) + "]";
    TETHER_TRY(item, read_one(entry, path));
    items.push_back(std::move(*item));
  }
  return items;
}

Result<JsonObjectReader> as_object(const rapidjson::Value& value, const std::string& path) {
  if (!value.IsObject()) {
    return make_error(Errc::kInvalid, "invalid_field",
                      path + ": expected an object, got " + json_type_name(value));
  }
  return JsonObjectReader(value, path);
}

Result<std::vector<std::string>> read_string_array(const JsonObjectReader& object,
                                                   const char* field, size_t limit, bool ids) {
  return read_array<std::string>(
      object, field, false, limit,
      [ids](const rapidjson::Value& value, const std::string& path) -> Result<std::string> {
        if (!value.IsString()) {
          return make_error(Errc::kInvalid, "invalid_field",
                            path + ": expected a string, got " + json_type_name(value));
        }
        std::string text(value.GetString(), value.GetStringLength());
        if (ids && !is_valid_id(text)) {
          return make_error(Errc::kInvalid, "invalid_field", path + ": not a valid id");
        }
        if (text.size() > 128)
          return make_error(Errc::kInvalid, "invalid_field", path + ": longer than 128 bytes");
        return text;
      });
}

Result<AgentHello> read_hello(const JsonObjectReader& object) {
  AgentHello hello;
  TETHER_TRY(version, object.required_string("version"));
  hello.version = std::move(*version);
  TETHER_TRY(capabilities, read_string_array(object, "capabilities", kMaxCapabilities, false));
  hello.capabilities = std::move(*capabilities);
  auto attempt_list = [](const rapidjson::Value& value,
                         const std::string& path) -> Result<AttemptRef> {
    TETHER_TRY(entry, as_object(value, path));
    return read_attempt(*entry);
  };
  TETHER_TRY(running,
             read_array<AttemptRef>(object, "running", false, kMaxHelloEntries, attempt_list));
  hello.running = std::move(*running);
  auto finals =
      read_array<AttemptRef>(object, "unacked_finals", false, kMaxHelloEntries, attempt_list);
  if (!finals) return finals.error();
  hello.unacked_finals = std::move(*finals);
  auto outbox = read_array<OutboxRange>(
      object, "outbox", false, kMaxHelloEntries,
      [](const rapidjson::Value& value, const std::string& path) -> Result<OutboxRange> {
        TETHER_TRY(entry, as_object(value, path));
        OutboxRange range;
        TETHER_TRY(attempt, read_attempt(*entry));
        range.attempt = std::move(*attempt);
        TETHER_TRY(stream, read_stream(*entry, "stream"));
        range.stream = *stream;
        TETHER_TRY(first, entry->required_uint("first_seq"));
        TETHER_TRY(last, entry->required_uint("last_seq"));
        if (*first == 0 || *last < *first) {
          return entry->field_error("last_seq", "range must satisfy 1 <= first_seq <= last_seq");
        }
        range.first_seq = *first;
        range.last_seq = *last;
        return range;
      });
  if (!outbox) return outbox.error();
  hello.outbox = std::move(*outbox);
  TETHER_TRY(rows, object.optional_uint("outbox_rows"));
  hello.outbox_rows = *rows;
  TETHER_TRY(bytes, object.optional_uint("outbox_bytes"));
  hello.outbox_bytes = *bytes;
  TETHER_TRY(instance, object.optional_string("instance"));
  if (*instance) {
    if (!is_valid_id(**instance)) {
      return object.field_error("instance", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
    }
    hello.instance = std::move(**instance);
  }
  TETHER_TRY(partial, object.optional_bool("partial"));
  hello.partial = partial->value_or(false);
  TETHER_TRY(labels, read_labels(object, "labels"));
  hello.labels = std::move(*labels);
  return hello;
}

Result<FramePayload> read_hello_payload(const JsonObjectReader& object) {
  TETHER_TRY(hello, read_hello(object));
  return FramePayload(std::move(*hello));
}

Result<FramePayload> read_started(const JsonObjectReader& object) {
  TaskStarted started;
  TETHER_TRY(attempt, read_attempt(object));
  started.attempt = std::move(*attempt);
  TETHER_TRY(pid, object.optional_int("pid"));
  started.report.pid = static_cast<int>(pid->value_or(0));
  TETHER_TRY(at, object.optional_string("started_at"));
  started.report.started_at = at->value_or("");
  return FramePayload(std::move(started));
}

Result<FramePayload> read_output(const JsonObjectReader& object) {
  TaskOutput output;
  TETHER_TRY(attempt, read_attempt(object));
  output.attempt = std::move(*attempt);
  TETHER_TRY(chunk, read_output_fields(object));
  if (chunk->data.size() > kMaxChunkBytes) {
    return make_error(Errc::kProtocol, "frame_too_large",
                      "frame.data: " + std::to_string(chunk->data.size()) +
                          " bytes after decoding, over the limit of " +
                          std::to_string(kMaxChunkBytes));
  }
  output.chunk = std::move(*chunk);
  return FramePayload(std::move(output));
}

Result<FramePayload> read_output_gap(const JsonObjectReader& object) {
  TaskOutputGap gap;
  TETHER_TRY(attempt, read_attempt(object));
  gap.attempt = std::move(*attempt);
  TETHER_TRY(stream, read_stream(object, "stream"));
  gap.stream = *stream;
  TETHER_TRY(seq, object.required_uint("seq"));
  if (*seq == 0) return object.field_error("seq", "must be at least 1");
  gap.seq = *seq;
  TETHER_TRY(offset, object.required_uint("offset"));
  gap.offset = *offset;
  TETHER_TRY(length, object.required_uint("length"));
  if (*length == 0) return object.field_error("length", "must be at least 1");
  gap.length = *length;
  return FramePayload(gap);
}

Result<FramePayload> read_final_frame(const JsonObjectReader& object) {
  TaskFinal final_frame;
  TETHER_TRY(attempt, read_attempt(object));
  final_frame.attempt = std::move(*attempt);
  TETHER_TRY(report, read_final_fields(object));
  final_frame.report = std::move(*report);
  return FramePayload(std::move(final_frame));
}

Result<FramePayload> read_hello_ack(const JsonObjectReader& object) {
  HubHelloAck ack;
  TETHER_TRY(related, object.optional_string("related_message_id"));
  ack.related_message_id = related->value_or("");
  TETHER_TRY(version, object.optional_string("version"));
  ack.version = version->value_or("");
  TETHER_TRY(capabilities, read_string_array(object, "capabilities", kMaxCapabilities, false));
  ack.capabilities = std::move(*capabilities);
  auto resume = read_array<ResumePoint>(
      object, "resume", false, kMaxHelloEntries,
      [](const rapidjson::Value& value, const std::string& path) -> Result<ResumePoint> {
        TETHER_TRY(entry, as_object(value, path));
        ResumePoint point;
        TETHER_TRY(attempt, read_id(*entry, "attempt_id"));
        point.attempt_id = std::move(*attempt);
        TETHER_TRY(stream, read_stream(*entry, "stream"));
        point.stream = *stream;
        TETHER_TRY(next, entry->required_uint("next_seq"));
        if (*next == 0) return entry->field_error("next_seq", "must be at least 1");
        point.next_seq = *next;
        return point;
      });
  if (!resume) return resume.error();
  ack.resume = std::move(*resume);
  TETHER_TRY(held, read_string_array(object, "finals_held", kMaxHelloEntries, true));
  ack.finals_held = std::move(*held);
  auto discard = read_array<DiscardNotice>(
      object, "discard", false, kMaxHelloEntries,
      [](const rapidjson::Value& value, const std::string& path) -> Result<DiscardNotice> {
        TETHER_TRY(entry, as_object(value, path));
        DiscardNotice notice;
        TETHER_TRY(attempt, read_id(*entry, "attempt_id"));
        notice.attempt_id = std::move(*attempt);
        TETHER_TRY(reason, entry->optional_string("reason"));
        notice.reason = reason->value_or("");
        return notice;
      });
  if (!discard) return discard.error();
  ack.discard = std::move(*discard);
  return FramePayload(std::move(ack));
}

Result<FramePayload> read_ack(const JsonObjectReader& object) {
  Ack ack;
  TETHER_TRY(attempt, read_id(object, "attempt_id"));
  ack.attempt_id = std::move(*attempt);
  TETHER_TRY(acked, object.required_string("acked"));
  if (*acked == "task.output") {
    ack.acked = AckedKind::kOutput;
    TETHER_TRY(stream, read_stream(object, "stream"));
    ack.stream = *stream;
    TETHER_TRY(through, object.required_uint("through_seq"));
    ack.through_seq = *through;
  } else if (*acked == "task.started" || *acked == "task.final") {
    ack.acked = *acked == "task.started" ? AckedKind::kStarted : AckedKind::kFinal;
    TETHER_TRY(related, object.required_string("related_message_id"));
    ack.related_message_id = std::move(*related);
    TETHER_TRY(verified, object.optional_bool("verified"));
    ack.verified = *verified;
  } else {
    return object.field_error("acked", "expected task.output, task.started or task.final");
  }
  return FramePayload(std::move(ack));
}

Result<FramePayload> read_error(const JsonObjectReader& object) {
  ErrorFrame error;
  TETHER_TRY(code, object.required_string("code"));
  error.code = std::move(*code);
  TETHER_TRY(message, object.optional_string("message"));
  error.message = message->value_or("");
  TETHER_TRY(retryable, object.optional_bool("retryable"));
  error.retryable = retryable->value_or(false);
  TETHER_TRY(related, object.optional_string("related_message_id"));
  error.related_message_id = related->value_or("");
  TETHER_TRY(attempt, object.optional_string("attempt_id"));
  error.attempt_id = attempt->value_or("");
  if (object.has("stream")) {
    TETHER_TRY(stream, read_stream(object, "stream"));
    error.stream = *stream;
  }
  TETHER_TRY(highest, object.optional_uint("highest_accepted_seq"));
  error.highest_accepted_seq = *highest;
  TETHER_TRY(next_offset, object.optional_uint("next_offset"));
  error.next_offset = *next_offset;
  return FramePayload(std::move(error));
}

Result<FramePayload> read_cancel(const JsonObjectReader& object) {
  TaskCancel cancel;
  TETHER_TRY(attempt, read_attempt(object));
  cancel.attempt = std::move(*attempt);
  TETHER_TRY(reason, object.optional_string("reason"));
  cancel.reason = reason->value_or("");
  return FramePayload(std::move(cancel));
}

Result<FramePayload> read_wake(const JsonObjectReader&) {
  return FramePayload(HubWake{});
}

// Section 4: every frame type and the reader of its fields.
struct PayloadReader {
  std::string_view type;
  Result<FramePayload> (*read)(const JsonObjectReader& object);
};
constexpr PayloadReader kPayloadReaders[] = {
    {"agent.hello", read_hello_payload},
    {"task.started", read_started},
    {"task.output", read_output},
    {"task.output_gap", read_output_gap},
    {"task.final", read_final_frame},
    {"hub.hello_ack", read_hello_ack},
    {"ack", read_ack},
    {"error", read_error},
    {"task.cancel", read_cancel},
    {"hub.wake", read_wake},
};

}  // namespace

Result<AttemptRef> read_attempt(const JsonObjectReader& object) {
  AttemptRef ref;
  TETHER_TRY(task, read_id(object, "task_id"));
  ref.task_id = std::move(*task);
  TETHER_TRY(attempt, read_id(object, "attempt_id"));
  ref.attempt_id = std::move(*attempt);
  return ref;
}

Result<FramePayload> read_payload(std::string_view type, const JsonObjectReader& object) {
  for (const auto& reader : kPayloadReaders) {
    if (reader.type == type) return reader.read(object);
  }
  return make_error(Errc::kProtocol, "unknown_type",
                    "frame.type: unknown frame type '" + std::string(type) + "'");
}

}  // namespace tether::protocol
