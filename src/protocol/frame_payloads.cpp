#include "protocol/frame_payloads.hpp"

#include "protocol/report_json.hpp"
#include "protocol/task_spec.hpp"

namespace tether::protocol {

Error invalid_frame(const std::string& message) {
  return make_error("invalid_frame", message);
}

// Field errors from the readers carry code "invalid_field"; frames report
// them as invalid_frame with the same message.
Error as_frame_error(const Error& error) {
  return error.code == "invalid_field" || error.code == "malformed_json" ? invalid_frame(error.message)
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
  auto id = object.required_string(field);
  if (!id) return id.error();
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
    auto item = read_one(entry, path);
    if (!item) return item.error();
    items.push_back(std::move(*item));
  }
  return items;
}

Result<JsonObjectReader> as_object(const rapidjson::Value& value, const std::string& path) {
  if (!value.IsObject()) {
    return make_error("invalid_field", path + ": expected an object, got " + json_type_name(value));
  }
  return JsonObjectReader(value, path);
}

Result<std::vector<std::string>> read_string_array(const JsonObjectReader& object,
                                                   const char* field, size_t limit, bool ids) {
  return read_array<std::string>(
      object, field, false, limit,
      [ids](const rapidjson::Value& value, const std::string& path) -> Result<std::string> {
        if (!value.IsString()) {
          return make_error("invalid_field",
                            path + ": expected a string, got " + json_type_name(value));
        }
        std::string text(value.GetString(), value.GetStringLength());
        if (ids && !is_valid_id(text)) {
          return make_error("invalid_field", path + ": not a valid id");
        }
        if (text.size() > 128) return make_error("invalid_field", path + ": longer than 128 bytes");
        return text;
      });
}

Result<AgentHello> read_hello(const JsonObjectReader& object) {
  AgentHello hello;
  auto version = object.required_string("version");
  if (!version) return version.error();
  hello.version = std::move(*version);
  auto capabilities = read_string_array(object, "capabilities", kMaxCapabilities, false);
  if (!capabilities) return capabilities.error();
  hello.capabilities = std::move(*capabilities);
  auto attempt_list = [](const rapidjson::Value& value,
                         const std::string& path) -> Result<AttemptRef> {
    auto entry = as_object(value, path);
    if (!entry) return entry.error();
    return read_attempt(*entry);
  };
  auto running = read_array<AttemptRef>(object, "running", false, kMaxHelloEntries, attempt_list);
  if (!running) return running.error();
  hello.running = std::move(*running);
  auto finals =
      read_array<AttemptRef>(object, "unacked_finals", false, kMaxHelloEntries, attempt_list);
  if (!finals) return finals.error();
  hello.unacked_finals = std::move(*finals);
  auto outbox = read_array<OutboxRange>(
      object, "outbox", false, kMaxHelloEntries,
      [](const rapidjson::Value& value, const std::string& path) -> Result<OutboxRange> {
        auto entry = as_object(value, path);
        if (!entry) return entry.error();
        OutboxRange range;
        auto attempt = read_attempt(*entry);
        if (!attempt) return attempt.error();
        range.attempt = std::move(*attempt);
        auto stream = read_stream(*entry, "stream");
        if (!stream) return stream.error();
        range.stream = *stream;
        auto first = entry->required_uint("first_seq");
        if (!first) return first.error();
        auto last = entry->required_uint("last_seq");
        if (!last) return last.error();
        if (*first == 0 || *last < *first) {
          return entry->field_error("last_seq", "range must satisfy 1 <= first_seq <= last_seq");
        }
        range.first_seq = *first;
        range.last_seq = *last;
        return range;
      });
  if (!outbox) return outbox.error();
  hello.outbox = std::move(*outbox);
  auto rows = object.optional_uint("outbox_rows");
  if (!rows) return rows.error();
  hello.outbox_rows = *rows;
  auto bytes = object.optional_uint("outbox_bytes");
  if (!bytes) return bytes.error();
  hello.outbox_bytes = *bytes;
  auto instance = object.optional_string("instance");
  if (!instance) return instance.error();
  if (*instance) {
    if (!is_valid_id(**instance)) {
      return object.field_error("instance", "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
    }
    hello.instance = std::move(**instance);
  }
  auto partial = object.optional_bool("partial");
  if (!partial) return partial.error();
  hello.partial = partial->value_or(false);
  return hello;
}

Result<FramePayload> read_hello_payload(const JsonObjectReader& object) {
  auto hello = read_hello(object);
  if (!hello) return hello.error();
  return FramePayload(std::move(*hello));
}

Result<FramePayload> read_started(const JsonObjectReader& object) {
  TaskStarted started;
  auto attempt = read_attempt(object);
  if (!attempt) return attempt.error();
  started.attempt = std::move(*attempt);
  auto pid = object.optional_int("pid");
  if (!pid) return pid.error();
  started.report.pid = static_cast<int>(pid->value_or(0));
  auto at = object.optional_string("started_at");
  if (!at) return at.error();
  started.report.started_at = at->value_or("");
  return FramePayload(std::move(started));
}

Result<FramePayload> read_output(const JsonObjectReader& object) {
  TaskOutput output;
  auto attempt = read_attempt(object);
  if (!attempt) return attempt.error();
  output.attempt = std::move(*attempt);
  auto chunk = read_output_fields(object);
  if (!chunk) return chunk.error();
  if (chunk->data.size() > kMaxChunkBytes) {
    return make_error("frame_too_large", "frame.data: " + std::to_string(chunk->data.size()) +
                                             " bytes after decoding, over the limit of " +
                                             std::to_string(kMaxChunkBytes));
  }
  output.chunk = std::move(*chunk);
  return FramePayload(std::move(output));
}

Result<FramePayload> read_output_gap(const JsonObjectReader& object) {
  TaskOutputGap gap;
  auto attempt = read_attempt(object);
  if (!attempt) return attempt.error();
  gap.attempt = std::move(*attempt);
  auto stream = read_stream(object, "stream");
  if (!stream) return stream.error();
  gap.stream = *stream;
  auto seq = object.required_uint("seq");
  if (!seq) return seq.error();
  if (*seq == 0) return object.field_error("seq", "must be at least 1");
  gap.seq = *seq;
  auto offset = object.required_uint("offset");
  if (!offset) return offset.error();
  gap.offset = *offset;
  auto length = object.required_uint("length");
  if (!length) return length.error();
  if (*length == 0) return object.field_error("length", "must be at least 1");
  gap.length = *length;
  return FramePayload(gap);
}

Result<FramePayload> read_final_frame(const JsonObjectReader& object) {
  TaskFinal final_frame;
  auto attempt = read_attempt(object);
  if (!attempt) return attempt.error();
  final_frame.attempt = std::move(*attempt);
  auto report = read_final_fields(object);
  if (!report) return report.error();
  final_frame.report = std::move(*report);
  return FramePayload(std::move(final_frame));
}

Result<FramePayload> read_hello_ack(const JsonObjectReader& object) {
  HubHelloAck ack;
  auto related = object.optional_string("related_message_id");
  if (!related) return related.error();
  ack.related_message_id = related->value_or("");
  auto version = object.optional_string("version");
  if (!version) return version.error();
  ack.version = version->value_or("");
  auto capabilities = read_string_array(object, "capabilities", kMaxCapabilities, false);
  if (!capabilities) return capabilities.error();
  ack.capabilities = std::move(*capabilities);
  auto resume = read_array<ResumePoint>(
      object, "resume", false, kMaxHelloEntries,
      [](const rapidjson::Value& value, const std::string& path) -> Result<ResumePoint> {
        auto entry = as_object(value, path);
        if (!entry) return entry.error();
        ResumePoint point;
        auto attempt = read_id(*entry, "attempt_id");
        if (!attempt) return attempt.error();
        point.attempt_id = std::move(*attempt);
        auto stream = read_stream(*entry, "stream");
        if (!stream) return stream.error();
        point.stream = *stream;
        auto next = entry->required_uint("next_seq");
        if (!next) return next.error();
        if (*next == 0) return entry->field_error("next_seq", "must be at least 1");
        point.next_seq = *next;
        return point;
      });
  if (!resume) return resume.error();
  ack.resume = std::move(*resume);
  auto held = read_string_array(object, "finals_held", kMaxHelloEntries, true);
  if (!held) return held.error();
  ack.finals_held = std::move(*held);
  auto discard = read_array<DiscardNotice>(
      object, "discard", false, kMaxHelloEntries,
      [](const rapidjson::Value& value, const std::string& path) -> Result<DiscardNotice> {
        auto entry = as_object(value, path);
        if (!entry) return entry.error();
        DiscardNotice notice;
        auto attempt = read_id(*entry, "attempt_id");
        if (!attempt) return attempt.error();
        notice.attempt_id = std::move(*attempt);
        auto reason = entry->optional_string("reason");
        if (!reason) return reason.error();
        notice.reason = reason->value_or("");
        return notice;
      });
  if (!discard) return discard.error();
  ack.discard = std::move(*discard);
  return FramePayload(std::move(ack));
}

Result<FramePayload> read_ack(const JsonObjectReader& object) {
  Ack ack;
  auto attempt = read_id(object, "attempt_id");
  if (!attempt) return attempt.error();
  ack.attempt_id = std::move(*attempt);
  auto acked = object.required_string("acked");
  if (!acked) return acked.error();
  if (*acked == "task.output") {
    ack.acked = AckedKind::kOutput;
    auto stream = read_stream(object, "stream");
    if (!stream) return stream.error();
    ack.stream = *stream;
    auto through = object.required_uint("through_seq");
    if (!through) return through.error();
    ack.through_seq = *through;
  } else if (*acked == "task.started" || *acked == "task.final") {
    ack.acked = *acked == "task.started" ? AckedKind::kStarted : AckedKind::kFinal;
    auto related = object.required_string("related_message_id");
    if (!related) return related.error();
    ack.related_message_id = std::move(*related);
    auto verified = object.optional_bool("verified");
    if (!verified) return verified.error();
    ack.verified = *verified;
  } else {
    return object.field_error("acked", "expected task.output, task.started or task.final");
  }
  return FramePayload(std::move(ack));
}

Result<FramePayload> read_error(const JsonObjectReader& object) {
  ErrorFrame error;
  auto code = object.required_string("code");
  if (!code) return code.error();
  error.code = std::move(*code);
  auto message = object.optional_string("message");
  if (!message) return message.error();
  error.message = message->value_or("");
  auto retryable = object.optional_bool("retryable");
  if (!retryable) return retryable.error();
  error.retryable = retryable->value_or(false);
  auto related = object.optional_string("related_message_id");
  if (!related) return related.error();
  error.related_message_id = related->value_or("");
  auto attempt = object.optional_string("attempt_id");
  if (!attempt) return attempt.error();
  error.attempt_id = attempt->value_or("");
  if (object.has("stream")) {
    auto stream = read_stream(object, "stream");
    if (!stream) return stream.error();
    error.stream = *stream;
  }
  auto highest = object.optional_uint("highest_accepted_seq");
  if (!highest) return highest.error();
  error.highest_accepted_seq = *highest;
  auto next_offset = object.optional_uint("next_offset");
  if (!next_offset) return next_offset.error();
  error.next_offset = *next_offset;
  return FramePayload(std::move(error));
}

Result<FramePayload> read_cancel(const JsonObjectReader& object) {
  TaskCancel cancel;
  auto attempt = read_attempt(object);
  if (!attempt) return attempt.error();
  cancel.attempt = std::move(*attempt);
  auto reason = object.optional_string("reason");
  if (!reason) return reason.error();
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

Result<AttemptRef> read_attempt(const JsonObjectReader& object) {
  AttemptRef ref;
  auto task = read_id(object, "task_id");
  if (!task) return task.error();
  ref.task_id = std::move(*task);
  auto attempt = read_id(object, "attempt_id");
  if (!attempt) return attempt.error();
  ref.attempt_id = std::move(*attempt);
  return ref;
}

Result<FramePayload> read_payload(std::string_view type, const JsonObjectReader& object) {
  for (const auto& reader : kPayloadReaders) {
    if (reader.type == type) return reader.read(object);
  }
  return make_error("unknown_type", "frame.type: unknown frame type '" + std::string(type) + "'");
}

void write_payload(JsonWriter& json, const FramePayload& payload) {
  std::visit([&](const auto& body) { write_body(json, body); }, payload);
}

}  // namespace tether::protocol
