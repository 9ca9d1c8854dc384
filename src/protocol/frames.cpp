#include "protocol/frames.hpp"

#include <charconv>

#include "protocol/frame_payloads.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"
#include "protocol/task_spec.hpp"
#include "protocol/utf8.hpp"

namespace tether::protocol {

std::string_view Frame::type() const {
  static constexpr std::string_view kTypes[] = {
      "agent.hello",   "task.started", "task.output", "task.output_gap", "task.final",
      "hub.hello_ack", "ack",          "error",       "task.cancel",     "hub.wake"};
  return kTypes[payload.index()];
}

std::string_view to_string(AckedKind kind) {
  switch (kind) {
    case AckedKind::kOutput:
      return "task.output";
    case AckedKind::kStarted:
      return "task.started";
    case AckedKind::kFinal:
      return "task.final";
  }
  return "task.output";
}

namespace {

// A frame already parsed: `object` names its fields "frame..." or
// "frame.frames[N]...".
Result<Frame> read_frame(const JsonObjectReader& object, const std::string& path) {
  Frame frame;
  const auto* version = object.find("v");
  if (!version) return invalid_frame(path + ".v: is required");
  if (!version->IsInt()) return invalid_frame(path + ".v: expected an integer");
  if (version->GetInt() != kProtocolVersion) {
    return make_error(Errc::kProtocol, "unsupported_version",
                      path + ".v: version " + std::to_string(version->GetInt()) +
                          " is not supported (this side speaks 1)");
  }
  frame.v = version->GetInt();
  auto type = object.required_string("type");
  if (!type) return as_frame_error(type.error());
  auto message_id = object.required_string("message_id");
  if (!message_id) return as_frame_error(message_id.error());
  if (!is_message_id(*message_id)) {
    return invalid_frame(path + ".message_id: must be 1 to 256 printable ASCII characters");
  }
  frame.message_id = std::move(*message_id);
  auto agent_id = object.optional_string("agent_id");
  if (!agent_id) return as_frame_error(agent_id.error());
  frame.agent_id = agent_id->value_or("");
  if (!frame.agent_id.empty() && !is_valid_id(frame.agent_id)) {
    return invalid_frame(path + ".agent_id: must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
  }
  auto sent_at = object.optional_string("sent_at");
  if (!sent_at) return as_frame_error(sent_at.error());
  frame.sent_at = sent_at->value_or("");
  if (*type == kBatchType) {
    return make_error(Errc::kProtocol, "unknown_type", path + ".type: a batch cannot be here");
  }
  auto payload = read_payload(*type, object);
  if (!payload) return as_frame_error(payload.error());
  frame.payload = std::move(*payload);
  return frame;
}

Result<void> check_size(std::string_view json) {
  if (json.size() <= kMaxFrameBytes) return {};
  return make_error(Errc::kProtocol, "frame_too_large",
                    "frame of " + std::to_string(json.size()) + " bytes is over the limit of " +
                        std::to_string(kMaxFrameBytes));
}

}  // namespace

Result<Frame> decode_frame(std::string_view json) {
  if (auto size = check_size(json); !size) return size.error();
  auto document = parse_json_object(json, "frame");
  if (!document) return as_frame_error(document.error());
  return read_frame(JsonObjectReader(*document, "frame"), "frame");
}

Result<std::vector<Frame>> decode_frames(std::string_view json) {
  if (auto size = check_size(json); !size) return size.error();
  auto document = parse_json_object(json, "frame");
  if (!document) return as_frame_error(document.error());
  JsonObjectReader object(*document, "frame");
  const auto* type = object.find("type");
  const bool batch = type && type->IsString() && std::string_view(type->GetString()) == kBatchType;
  std::vector<Frame> frames;
  if (!batch) {
    TETHER_TRY(frame, read_frame(object, "frame"));
    frames.push_back(std::move(*frame));
    return frames;
  }
  // The batch's own members: v, message_id (checked as a frame's), frames.
  const auto* version = object.find("v");
  if (!version || !version->IsInt() || version->GetInt() != kProtocolVersion) {
    return make_error(Errc::kProtocol, "unsupported_version",
                      "frame.v: a batch of version 1 is the only kind this side reads");
  }
  auto message_id = object.required_string("message_id");
  if (!message_id) return as_frame_error(message_id.error());
  const auto* list = object.find("frames");
  if (!list || !list->IsArray() || list->Empty() || list->Size() > kMaxBatchFrames) {
    return invalid_frame("frame.frames: expected an array of 1 to " +
                         std::to_string(kMaxBatchFrames) + " frames");
  }
  frames.reserve(list->Size());
  for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
    const std::string path = "frame.frames[" + std::to_string(i) + "]";
    const rapidjson::Value& item = (*list)[i];
    if (!item.IsObject()) return invalid_frame(path + ": expected a frame (an object)");
    TETHER_TRY(frame, read_frame(JsonObjectReader(item, path), path));
    frames.push_back(std::move(*frame));
  }
  return frames;
}

std::string encode_batch(std::string_view message_id, std::string_view agent_id,
                         const std::vector<std::string>& frames, std::string_view sent_at) {
  JsonWriter head;
  head.begin_object();
  head.field("v", kProtocolVersion);
  head.field("type", kBatchType);
  head.field("message_id", message_id);
  if (!agent_id.empty()) head.field("agent_id", agent_id);
  std::string out = head.str();  // `{"v":1,...` with the object still open
  size_t total = out.size() + 32 + sent_at.size();
  for (const auto& frame : frames)
    total += frame.size() + 1;
  out.reserve(total);
  out += ",\"frames\":[";
  for (size_t i = 0; i < frames.size(); ++i) {
    if (i > 0) out += ',';
    out += frames[i];
  }
  out += ']';
  JsonWriter stamp;
  stamp.string(sent_at);
  out += ",\"sent_at\":";
  out += stamp.str();
  out += '}';
  return out;
}

std::optional<AttemptRef> peek_task_ids(std::string_view json) {
  if (json.size() > kMaxFrameBytes) return std::nullopt;
  auto document = parse_json_object(json, "task");
  if (!document) return std::nullopt;
  auto ref = read_attempt(JsonObjectReader(*document, "task"));
  if (!ref) return std::nullopt;
  return std::move(*ref);
}

std::string peek_message_id(std::string_view json) {
  auto document = parse_json_object(json, "frame");
  if (!document) return {};
  auto id = JsonObjectReader(*document, "frame").required_string("message_id");
  if (!id || !is_message_id(*id)) return {};
  return *id;
}

std::string encode_frame(const Frame& frame) {
  JsonWriter json;
  json.begin_object();
  json.field("v", frame.v);
  json.field("type", frame.type());
  json.field("message_id", frame.message_id);
  if (!frame.agent_id.empty()) json.field("agent_id", frame.agent_id);
  write_payload(json, frame.payload);
  if (!frame.sent_at.empty()) json.field("sent_at", frame.sent_at);
  json.end_object();
  return json.str();
}

std::string stamp_sent_at(std::string encoded, std::string_view sent_at) {
  // encode_frame closes the object right after its last member, which is
  // where it writes sent_at when it has one.
  JsonWriter value;
  value.string(sent_at);
  if (encoded.empty() || encoded.back() != '}') return encoded;  // not from encode_frame
  encoded.pop_back();
  encoded += ",\"sent_at\":";
  encoded += value.str();
  encoded += '}';
  return encoded;
}

std::string without_base64(std::string encoded) {
  // Bytes that are not UTF-8 go as '?', one per byte, so that offsets and
  // lengths hold; the final's digest then cannot match, and the hub records
  // the output as not verified.
  auto frame = decode_frame(encoded);
  if (!frame) return encoded;
  auto* output = std::get_if<TaskOutput>(&frame->payload);
  if (!output) return encoded;
  output->chunk.data = with_invalid_utf8_replaced(output->chunk.data, '?');
  frame->sent_at.clear();
  return encode_frame(*frame);
}

std::string started_message_id(std::string_view attempt_id) {
  return std::string(attempt_id) + ":started";
}

std::string output_message_id(std::string_view attempt_id, StreamName stream, uint64_t seq) {
  return std::string(attempt_id) + ":" + std::string(to_string(stream)) + ":" + std::to_string(seq);
}

std::string final_message_id(std::string_view attempt_id) {
  return std::string(attempt_id) + ":final";
}

std::optional<OutputMessageRef> parse_output_message_id(std::string_view message_id) {
  // From the right: attempt ids may hold ':' themselves.
  const size_t last = message_id.rfind(':');
  if (last == std::string_view::npos || last == 0) return std::nullopt;
  const size_t middle = message_id.rfind(':', last - 1);
  if (middle == std::string_view::npos || middle == 0) return std::nullopt;
  OutputMessageRef ref;
  ref.attempt_id = std::string(message_id.substr(0, middle));
  auto stream = parse_stream_name(std::string(message_id.substr(middle + 1, last - middle - 1)));
  if (!stream || !is_valid_id(ref.attempt_id)) return std::nullopt;
  ref.stream = *stream;
  const std::string_view seq = message_id.substr(last + 1);
  auto [end, error] = std::from_chars(seq.data(), seq.data() + seq.size(), ref.seq);
  if (error != std::errc() || end != seq.data() + seq.size() || ref.seq == 0) return std::nullopt;
  return ref;
}

std::string final_fingerprint(const FinalReport& report) {
  JsonWriter json;
  json.begin_object();
  json.field("status", to_string(report.status));
  json.field("exit_code", report.exit_code);
  json.field("signal", report.signal);
  for (auto stream : {StreamName::kStdout, StreamName::kStderr}) {
    const auto& summary = report.summary(stream);
    json.key(to_string(stream));
    json.begin_array();
    json.uint(summary.bytes);
    json.string(summary.sha256);
    json.uint(summary.dropped_bytes);
    json.uint(summary.undelivered_bytes);
    json.end_array();
  }
  json.end_object();
  return json.str();
}

}  // namespace tether::protocol
