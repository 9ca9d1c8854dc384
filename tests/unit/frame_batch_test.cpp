// Batches (docs/protocol.md 4.4): encode_batch writes what decode_frames
// reads, frames come out in order and whole, and a bad batch is refused
// whole with the frame named.
#include <catch2/catch.hpp>

#include "protocol/frames.hpp"

using namespace tether;
using namespace tether::protocol;

namespace {

std::string encoded_output(uint64_t seq, const std::string& data) {
  Frame frame;
  frame.message_id = "t-1-a1:stdout:" + std::to_string(seq);
  frame.agent_id = "edge-1";
  TaskOutput output;
  output.attempt = {"t-1", "t-1-a1"};
  output.chunk.stream = StreamName::kStdout;
  output.chunk.seq = seq;
  output.chunk.offset = (seq - 1) * data.size();
  output.chunk.data = data;
  frame.payload = output;
  return stamp_sent_at(encode_frame(frame), "2026-11-30T17:00:00.000Z");
}

}  // namespace

TEST_CASE("a batch round-trips: its frames in order, each whole", "[frames][batch]") {
  std::vector<std::string> frames;
  for (uint64_t seq = 1; seq <= 50; ++seq)
    frames.push_back(encoded_output(seq, "line " + std::to_string(seq) + " \"quoted\"\n"));
  const std::string batch = encode_batch("batch:7", "edge-1", frames, "2026-11-30T17:00:00.001Z");
  auto decoded = decode_frames(batch);
  REQUIRE(decoded.ok());
  REQUIRE(decoded->size() == 50);
  for (uint64_t seq = 1; seq <= 50; ++seq) {
    const Frame& frame = (*decoded)[seq - 1];
    CHECK(frame.message_id == "t-1-a1:stdout:" + std::to_string(seq));
    CHECK(frame.sent_at == "2026-11-30T17:00:00.000Z");  // each frame's own
    const auto& output = std::get<TaskOutput>(frame.payload);
    CHECK(output.chunk.seq == seq);
    CHECK(output.chunk.data == "line " + std::to_string(seq) + " \"quoted\"\n");
  }
  // A plain frame reads as a list of one; decode_frame does not take batches.
  auto single = decode_frames(frames[0]);
  REQUIRE(single.ok());
  CHECK(single->size() == 1);
  auto refused = decode_frame(batch);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "unknown_type");
}

TEST_CASE("a bad batch is refused whole, naming the frame", "[frames][batch]") {
  const std::string good = encoded_output(1, "a\n");
  struct Case {
    std::string json;
    std::string code;
    std::string names;
  };
  const std::vector<Case> cases = {
      {R"({"v":1,"type":"batch","message_id":"b","frames":[]})", "invalid_frame", "frame.frames"},
      {R"({"v":1,"type":"batch","message_id":"b"})", "invalid_frame", "frame.frames"},
      {R"({"v":1,"type":"batch","message_id":"b","frames":{}})", "invalid_frame", "frame.frames"},
      {R"({"v":1,"type":"batch","frames":[)" + good + "]}", "invalid_frame", "frame.message_id"},
      {R"({"v":2,"type":"batch","message_id":"b","frames":[)" + good + "]}", "unsupported_version",
       "frame.v"},
      {R"({"v":1,"type":"batch","message_id":"b","frames":[)" + good + ",7]}", "invalid_frame",
       "frame.frames[1]"},
      {R"({"v":1,"type":"batch","message_id":"b","frames":[)" + good +
           R"(,{"v":1,"type":"batch","message_id":"c","frames":[]}]})",
       "unknown_type", "frame.frames[1].type"},
      {R"({"v":1,"type":"batch","message_id":"b","frames":[)" + good +
           R"(,{"v":1,"type":"task.output","message_id":"x"}]})",
       "invalid_frame", "frame.frames[1]."},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    auto decoded = decode_frames(c.json);
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.error().code == c.code);
    CHECK(decoded.error().message.find(c.names) != std::string::npos);
  }
}
