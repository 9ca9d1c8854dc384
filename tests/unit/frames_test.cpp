// The protocol v1 frame codec: every frame type round-trips, and every kind
// of malformed input is rejected with an error that names the field.
#include <catch2/catch.hpp>

#include "protocol/base64.hpp"
#include "protocol/frames.hpp"
#include "protocol/sha256.hpp"

using namespace tether;
using namespace tether::protocol;

namespace {

Frame frame_of(FramePayload payload, std::string id = "m-1") {
  Frame frame;
  frame.message_id = std::move(id);
  frame.agent_id = "edge-1";
  frame.sent_at = "2026-11-22T05:12:00.123Z";
  frame.payload = std::move(payload);
  return frame;
}

template <class T>
T round_trip(const FramePayload& payload) {
  const std::string json = encode_frame(frame_of(payload));
  auto decoded = decode_frame(json);
  INFO(json);
  REQUIRE(decoded.ok());
  CHECK(decoded->message_id == "m-1");
  CHECK(decoded->agent_id == "edge-1");
  CHECK(decoded->sent_at == "2026-11-22T05:12:00.123Z");
  REQUIRE(std::holds_alternative<T>(decoded->payload));
  return std::get<T>(decoded->payload);
}

FinalReport sample_final() {
  FinalReport report;
  report.status = AttemptStatus::kFailed;
  report.exit_code = 3;
  report.started_at = "2026-11-22T05:12:00.200Z";
  report.finished_at = "2026-11-22T05:12:04.871Z";
  report.stdout_summary = {10, sha256_hex("0123456789"), 0};
  report.stderr_summary = {0, sha256_hex(""), 0};
  report.error = "something";
  return report;
}

}  // namespace

TEST_CASE("every frame type round-trips through the codec", "[frames]") {
  AgentHello hello;
  hello.version = "0.1.0";
  hello.capabilities = {"output.base64", "final.http"};
  hello.running = {{"t-1", "t-1-a1"}};
  hello.outbox = {{{"t-1", "t-1-a1"}, StreamName::kStderr, 3, 9}};
  hello.unacked_finals = {{"t-0", "t-0-a2"}};
  hello.outbox_rows = 7;
  auto got_hello = round_trip<AgentHello>(hello);
  CHECK(got_hello.version == "0.1.0");
  CHECK(got_hello.capabilities.size() == 2);
  CHECK(got_hello.running.at(0).attempt_id == "t-1-a1");
  CHECK(got_hello.outbox.at(0).stream == StreamName::kStderr);
  CHECK(got_hello.outbox.at(0).first_seq == 3);
  CHECK(got_hello.outbox.at(0).last_seq == 9);
  CHECK(got_hello.unacked_finals.at(0).attempt_id == "t-0-a2");
  CHECK(got_hello.outbox_rows == 7u);
  CHECK_FALSE(got_hello.outbox_bytes);
  CHECK(got_hello.labels.empty());
  hello.labels = {{"role", "web"}, {"region", "eu"}};
  CHECK_THAT(encode_frame(frame_of(hello)),
             Catch::Contains(R"("labels":{"region":"eu","role":"web"})"));
  auto labelled = round_trip<AgentHello>(hello);
  CHECK(labelled.labels == hello.labels);

  auto started =
      round_trip<TaskStarted>(TaskStarted{{"t-1", "t-1-a1"}, {4242, "2026-11-22T05:12:00Z"}});
  CHECK(started.report.pid == 4242);
  CHECK(started.attempt.task_id == "t-1");

  const std::string binary("\x00\xFF\xFE text", 8);
  auto output =
      round_trip<TaskOutput>(TaskOutput{{"t-1", "t-1-a1"}, {StreamName::kStdout, 5, 100, binary}});
  CHECK(output.chunk.data == binary);
  CHECK(output.chunk.seq == 5);
  CHECK(output.chunk.offset == 100);
  auto text = round_trip<TaskOutput>(
      TaskOutput{{"t-1", "t-1-a1"}, {StreamName::kStderr, 1, 0, "caf\xC3\xA9\n"}});
  CHECK(text.chunk.data == "caf\xC3\xA9\n");
  CHECK(text.chunk.stream == StreamName::kStderr);

  auto gap = round_trip<TaskOutputGap>(
      TaskOutputGap{{"t-1", "t-1-a1"}, StreamName::kStdout, 7, 393216, 131072});
  CHECK(gap.length == 131072);
  CHECK(gap.offset == 393216);

  auto final_frame = round_trip<TaskFinal>(TaskFinal{{"t-1", "t-1-a1"}, sample_final()});
  CHECK(final_fingerprint(final_frame.report) == final_fingerprint(sample_final()));
  CHECK(final_frame.report.error == "something");
  CHECK(final_frame.report.exit_code == 3);
  CHECK_FALSE(final_frame.report.signal);
  CHECK_FALSE(final_frame.report.redactions);
  FinalReport redacted = sample_final();
  redacted.redactions = RedactionCounts{2, 0};
  auto redacted_frame = round_trip<TaskFinal>(TaskFinal{{"t-1", "t-1-a1"}, redacted});
  REQUIRE(redacted_frame.report.redactions.has_value());
  CHECK(redacted_frame.report.redactions->stdout_count == 2);
  CHECK(redacted_frame.report.redactions->stderr_count == 0);

  HubHelloAck ack;
  ack.related_message_id = "hello:1";
  ack.version = "0.1.0";
  ack.resume = {{"t-1-a1", StreamName::kStdout, 12}};
  ack.finals_held = {"t-0-a2"};
  ack.discard = {{"t-9-a1", "lost"}};
  auto got_ack = round_trip<HubHelloAck>(ack);
  CHECK(got_ack.resume.at(0).next_seq == 12);
  CHECK(got_ack.finals_held.at(0) == "t-0-a2");
  CHECK(got_ack.discard.at(0).reason == "lost");

  Ack output_ack;
  output_ack.attempt_id = "t-1-a1";
  output_ack.stream = StreamName::kStderr;
  output_ack.through_seq = 40;
  auto got_output_ack = round_trip<Ack>(output_ack);
  CHECK(got_output_ack.acked == AckedKind::kOutput);
  CHECK(got_output_ack.through_seq == 40);
  CHECK(got_output_ack.stream == StreamName::kStderr);

  Ack final_ack;
  final_ack.attempt_id = "t-1-a1";
  final_ack.acked = AckedKind::kFinal;
  final_ack.related_message_id = "t-1-a1:final";
  final_ack.verified = true;
  auto got_final_ack = round_trip<Ack>(final_ack);
  CHECK(got_final_ack.acked == AckedKind::kFinal);
  CHECK(got_final_ack.verified == true);

  ErrorFrame error;
  error.code = "output_sequence_gap";
  error.message = "expected 12";
  error.retryable = true;
  error.related_message_id = "t-1-a1:stdout:15";
  error.attempt_id = "t-1-a1";
  error.stream = StreamName::kStdout;
  error.highest_accepted_seq = 11;
  error.next_offset = 720896;
  auto got_error = round_trip<ErrorFrame>(error);
  CHECK(got_error.retryable);
  CHECK(got_error.highest_accepted_seq == 11u);
  CHECK(got_error.next_offset == 720896u);

  auto cancel = round_trip<TaskCancel>(TaskCancel{{"t-1", "t-1-a1"}, "operator"});
  CHECK(cancel.reason == "operator");
  round_trip<HubWake>(HubWake{});
}

TEST_CASE("message ids are stable and fingerprints ignore timestamps and prose", "[frames]") {
  CHECK(output_message_id("t-1-a1", StreamName::kStderr, 9) == "t-1-a1:stderr:9");
  CHECK(started_message_id("t-1-a1") == "t-1-a1:started");
  CHECK(final_message_id("t-1-a1") == "t-1-a1:final");
  FinalReport a = sample_final();
  FinalReport b = sample_final();
  b.finished_at = "later";
  b.error = "other words";
  CHECK(final_fingerprint(a) == final_fingerprint(b));
  b.stdout_summary.sha256 = sha256_hex("x");
  CHECK(final_fingerprint(a) != final_fingerprint(b));
  FinalReport c = sample_final();
  c.exit_code = 4;
  CHECK(final_fingerprint(a) != final_fingerprint(c));
}

TEST_CASE("malformed frames are rejected with the field named", "[frames]") {
  const std::string sha = sha256_hex("");
  const std::string out =
      R"("v":1,"type":"task.output","message_id":"m","agent_id":"a","task_id":"t","attempt_id":"t-a1",)";
  const std::string fin =
      R"("v":1,"type":"task.final","message_id":"m","task_id":"t","attempt_id":"t-a1","status":"succeeded",)";
  const std::string streams = R"("stdout":{"bytes":0,"sha256":")" + sha +
                              R"("},"stderr":{"bytes":0,"sha256":")" + sha + "\"}";
  struct Case {
    std::string json;
    const char* code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"not json", "invalid_frame", "invalid JSON"},
      {R"({"v":1,"type":"agent.hello","message_id":"m","version":"1","labels":{"role":"web/x"}})",
       "invalid_frame", "frame.labels: label 'role=web/x': keys are 1 to 63"},
      {R"({"v":1,"type":"agent.hello","message_id":"m","version":"1","labels":["role=web"]})",
       "invalid_frame", "frame.labels: expected an object of strings, got array"},
      {R"({"v":1,"type":"agent.hello","message_id":"m","version":"1","labels":{"role":1}})",
       "invalid_frame", "frame.labels: 'role': expected a string value"},
      {"[]", "invalid_frame", "expected a JSON object"},
      // Found by fuzz_frame: RapidJSON decodes a lone low surrogate escape
      // to bytes that are not UTF-8, which no JSON encoder can send on.
      {R"({"v":1,"type":"hub.wake","message_id":"m","sent_at":"x\uDE28"})", "invalid_frame",
       "frame.sent_at: not valid UTF-8 once decoded"},
      {R"({"v":1,"type":"hub.wake","message_id":"m","x":{"\uDC00":1}})", "invalid_frame",
       "frame.x (a field name): not valid UTF-8"},
      {R"({"type":"hub.wake","message_id":"m"})", "invalid_frame", "frame.v: is required"},
      {R"({"v":"1","type":"hub.wake","message_id":"m"})", "invalid_frame",
       "frame.v: expected an integer"},
      {R"({"v":2,"type":"hub.wake","message_id":"m"})", "unsupported_version", "version 2"},
      {R"({"v":1,"message_id":"m"})", "invalid_frame", "frame.type: is required"},
      {R"({"v":1,"type":"task.nope","message_id":"m"})", "unknown_type", "task.nope"},
      {R"({"v":1,"type":"hub.wake"})", "invalid_frame", "frame.message_id: is required"},
      {R"({"v":1,"type":"hub.wake","message_id":"has space"})", "invalid_frame",
       "frame.message_id"},
      {R"({"v":1,"type":"hub.wake","message_id":"m","agent_id":"bad/agent"})", "invalid_frame",
       "frame.agent_id"},
      {"{" + out + R"("seq":1,"offset":0,"data":"x"})", "invalid_frame",
       "frame.stream: is required"},
      {"{" + out + R"("stream":"stdin","seq":1,"offset":0,"data":"x"})", "invalid_frame",
       "frame.stream: expected \"stdout\" or \"stderr\""},
      {"{" + out + R"("stream":"stdout","seq":0,"offset":0,"data":"x"})", "invalid_frame",
       "frame.seq: must be at least 1"},
      {"{" + out + R"("stream":"stdout","seq":-3,"offset":0,"data":"x"})", "invalid_frame",
       "frame.seq: expected a non-negative integer"},
      {"{" + out + R"("stream":"stdout","seq":1,"offset":"0","data":"x"})", "invalid_frame",
       "frame.offset: expected a non-negative integer, got string"},
      {"{" + out + R"("stream":"stdout","seq":1,"offset":0})", "invalid_frame",
       "frame.data: is required"},
      {"{" + out + R"("stream":"stdout","seq":1,"offset":0,"data":""})", "invalid_frame",
       "frame.data: must not be empty"},
      {"{" + out + R"("stream":"stdout","seq":1,"offset":0,"data":"!!!!","encoding":"base64"})",
       "invalid_frame", "frame.data: invalid base64"},
      {"{" + out + R"("stream":"stdout","seq":1,"offset":0,"data":"x","encoding":"rot13"})",
       "invalid_frame", "frame.encoding"},
      {R"({"v":1,"type":"task.output","message_id":"m","attempt_id":"t-a1","stream":"stdout","seq":1,"offset":0,"data":"x"})",
       "invalid_frame", "frame.task_id: is required"},
      {R"({"v":1,"type":"task.output","message_id":"m","task_id":"t","attempt_id":"t a1","stream":"stdout","seq":1,"offset":0,"data":"x"})",
       "invalid_frame", "frame.attempt_id: must be"},
      {"{" + fin + R"("stdout":{"bytes":0,"sha256":")" + sha + R"("}})", "invalid_frame",
       "frame.stderr: is required"},
      {"{" + fin + R"("stdout":{"bytes":0,"sha256":"ABC"},"stderr":{"bytes":0,"sha256":")" + sha +
           R"("}})",
       "invalid_frame", "frame.stdout.sha256: expected 64 lowercase hex"},
      {"{" + fin + R"("stdout":{"bytes":1,"sha256":")" + sha +
           R"(","dropped_bytes":2},"stderr":{"bytes":0,"sha256":")" + sha + R"("}})",
       "invalid_frame", "frame.stdout.dropped_bytes: larger than bytes"},
      {R"({"v":1,"type":"task.final","message_id":"m","task_id":"t","attempt_id":"t-a1","status":"exploded",)" +
           streams + "}",
       "invalid_frame", "frame.status: expected succeeded"},
      {"{" + fin + R"("signal":99,)" + streams + "}", "invalid_frame", "frame.signal"},
      {"{" + fin + R"("exit_code":"0",)" + streams + "}", "invalid_frame",
       "frame.exit_code: expected an integer"},
      {R"({"v":1,"type":"ack","message_id":"m","attempt_id":"t-a1","acked":"task.nope"})",
       "invalid_frame", "frame.acked"},
      {R"({"v":1,"type":"ack","message_id":"m","attempt_id":"t-a1","acked":"task.output","stream":"stdout"})",
       "invalid_frame", "frame.through_seq: is required"},
      {R"({"v":1,"type":"ack","message_id":"m","attempt_id":"t-a1","acked":"task.final"})",
       "invalid_frame", "frame.related_message_id: is required"},
      {R"({"v":1,"type":"agent.hello","message_id":"m","version":"1","outbox":[{"task_id":"t","attempt_id":"t-a1","stream":"stdout","first_seq":5,"last_seq":2}]})",
       "invalid_frame", "frame.outbox[0].last_seq: range"},
      {R"({"v":1,"type":"agent.hello","message_id":"m","version":"1","running":[3]})",
       "invalid_frame", "frame.running[0]: expected an object"},
      {R"({"v":1,"type":"agent.hello","message_id":"m","version":"1","running":"t"})",
       "invalid_frame", "frame.running: expected an array"},
      {R"({"v":1,"type":"agent.hello","message_id":"m"})", "invalid_frame",
       "frame.version: is required"},
      {R"({"v":1,"type":"task.output_gap","message_id":"m","task_id":"t","attempt_id":"t-a1","stream":"stdout","seq":2,"offset":0,"length":0})",
       "invalid_frame", "frame.length: must be at least 1"},
      {"{\"v\":1,\"type\":\"hub.wake\",\"message_id\":\"m\xff\"}", "invalid_frame", "invalid JSON"},
      // An overlong "/" and a lone low surrogate: not UTF-8, raw or decoded.
      {"{\"v\":1,\"type\":\"hub.wake\",\"message_id\":\"m\xc0\xaf\"}", "invalid_frame",
       "not valid UTF-8"},
      {R"({"v":1,"type":"hub.wake","message_id":"m\udc00"})", "invalid_frame",
       "not valid UTF-8 once decoded"},
      {R"({"v":1,"type":"hub.wake","message_id":"m"} trailing)", "invalid_frame", "invalid JSON"},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    auto frame = decode_frame(c.json);
    REQUIRE_FALSE(frame.ok());
    CHECK(frame.error().code == c.code);
    CHECK_THAT(frame.error().message, Catch::Contains(c.message));
  }
}

TEST_CASE("a frame over the size limit is refused before parsing", "[frames]") {
  const std::string huge = R"({"v":1,"type":"hub.wake","message_id":"m","pad":")" +
                           std::string(kMaxFrameBytes, 'x') + "\"}";
  auto frame = decode_frame(huge);
  REQUIRE_FALSE(frame.ok());
  CHECK(frame.error().code == "frame_too_large");
  CHECK(peek_message_id(R"({"v":9,"message_id":"abc"})") == "abc");
  CHECK(peek_message_id("garbage").empty());
}

TEST_CASE("the largest chunk fits one message however it escapes; a larger one is refused",
          "[frames]") {
  // Worst cases: every byte a control character (JSON "\u0001", 6 bytes
  // each), and bytes that are not UTF-8 (base64).
  for (const std::string& data :
       {std::string(kMaxChunkBytes, '\x01'), std::string(kMaxChunkBytes, '\xff')}) {
    protocol::TaskOutput output{{"t-" + std::string(120, 'x'), "a-" + std::string(120, 'y')},
                                {protocol::StreamName::kStderr, 1, 0, data}};
    const std::string json = encode_frame(frame_of(output));
    CHECK(json.size() <= kMaxFrameBytes);
    auto decoded = decode_frame(json);
    REQUIRE(decoded.ok());
    CHECK(std::get<protocol::TaskOutput>(decoded->payload).chunk.data == data);
  }
  protocol::TaskOutput over{
      {"t-1", "t-1-a1"},
      {protocol::StreamName::kStdout, 1, 0, std::string(kMaxChunkBytes + 1, 'a')}};
  auto refused = decode_frame(encode_frame(frame_of(over)));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "frame_too_large");
  CHECK_THAT(refused.error().message, Catch::Contains("frame.data"));
}

TEST_CASE("a surrogate pair escape decodes to its one UTF-8 character", "[frames]") {
  auto frame =
      decode_frame(R"({"v":1,"type":"hub.wake","message_id":"m","sent_at":"\uD83D\uDE00"})");
  REQUIRE(frame.ok());
  CHECK(frame->sent_at == "\xF0\x9F\x98\x80");
}

TEST_CASE("stamping sent_at on a stored frame gives what encode_frame writes with it", "[frames]") {
  Frame frame;
  frame.message_id = "t-1-a1:stdout:3";
  frame.agent_id = "edge-1";
  OutputChunk chunk{StreamName::kStdout, 3, 10, std::string("caf\xc3\xa9 \"quoted\"\n")};
  frame.payload = TaskOutput{{"t-1", "t-1-a1"}, chunk};
  const std::string stored = encode_frame(frame);
  frame.sent_at = "2026-11-30T07:00:00.123Z";
  const std::string expected = encode_frame(frame);
  const std::string stamped = stamp_sent_at(stored, frame.sent_at);
  CHECK(stamped == expected);
  auto decoded = decode_frame(stamped);
  REQUIRE(decoded.ok());
  CHECK(decoded->sent_at == "2026-11-30T07:00:00.123Z");
}
