// Batches (docs/protocol.md 4.4), written from the document: an agent that
// lists frames.batch may send several frames in one message and gets its
// acks in one message; the frames count as if sent one by one; one bad
// frame refuses the whole message. Messages are built and read as JSON
// text here, not with our protocol library.
#include <algorithm>
#include <map>
#include <set>

#include "protocol/json_reader.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;

namespace {

std::string output_json(const protocol::TaskSpec& spec, const std::string& stream, int seq,
                        int offset, const std::string& data) {
  return R"({"v":1,"type":"task.output","message_id":")" + spec.attempt_id + ":" + stream + ":" +
         std::to_string(seq) + R"(","task_id":")" + spec.task_id + R"(","attempt_id":")" +
         spec.attempt_id + R"(","stream":")" + stream + R"(","seq":)" + std::to_string(seq) +
         R"(,"offset":)" + std::to_string(offset) + R"(,"data":")" + data +
         R"(","encoding":"utf8"})";
}

std::string batch_json(const std::string& id, const std::vector<std::string>& frames) {
  std::string out = R"({"v":1,"type":"batch","message_id":")" + id + R"(","frames":[)";
  for (size_t i = 0; i < frames.size(); ++i)
    out += (i ? "," : "") + frames[i];
  return out + "]}";
}

core::Co<protocol::HubHelloAck> hello_with_batches(ScriptedAgent& agent) {
  protocol::AgentHello hello;
  hello.version = "test";
  hello.capabilities = {"frames.batch", "output.gap", "final.http", "output.base64"};
  co_return co_await agent.connect_and_hello(std::move(hello));
}

}  // namespace

TEST_CASE("a batch's frames are stored in order and acked together in one batch", "[hub][batch]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto hello_ack = co_await hello_with_batches(agent);
    const bool offered = std::find(hello_ack.capabilities.begin(), hello_ack.capabilities.end(),
                                   "frames.batch") != hello_ack.capabilities.end();
    CHECK(offered);
    auto spec = co_await dispatch(agent);
    co_await start(agent, spec);
    agent.send_raw(batch_json("b-1", {output_json(spec, "stdout", 1, 0, "one "),
                                      output_json(spec, "stderr", 1, 0, "err\\n"),
                                      output_json(spec, "stdout", 2, 4, "two\\n")}));
    // The acks of that commit: one message, type batch, an ack per stream.
    auto text = co_await agent.socket()->receive();
    REQUIRE(text.ok());
    auto document = protocol::parse_json_object(*text, "message");
    REQUIRE(document.ok());
    CHECK(std::string((*document)["type"].GetString()) == "batch");
    REQUIRE((*document)["frames"].IsArray());
    std::map<std::string, uint64_t> through;
    for (const auto& ack : (*document)["frames"].GetArray()) {
      CHECK(std::string(ack["type"].GetString()) == "ack");
      through[ack["stream"].GetString()] = ack["through_seq"].GetUint64();
    }
    CHECK(through == std::map<std::string, uint64_t>{{"stderr", 1}, {"stdout", 2}});
    auto out = co_await stored_output(op, task_id, "stdout");
    auto err = co_await stored_output(op, task_id, "stderr");
    CHECK(out == "one two\n");
    CHECK(err == "err\n");
    agent.close();
  });
}

TEST_CASE("a batch with one bad frame is refused whole, naming that frame", "[hub][batch]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    co_await hello_with_batches(agent);
    auto spec = co_await dispatch(agent);
    co_await start(agent, spec);
    std::string bad = output_json(spec, "stdout", 2, 4, "two");
    bad.replace(bad.find(R"("seq":2)"), 7, R"("seq":"2")");
    agent.send_raw(batch_json("b-2", {output_json(spec, "stdout", 1, 0, "one "), bad}));
    auto reply = co_await agent.receive();
    REQUIRE(reply.ok());
    auto error = expect<protocol::ErrorFrame>(*reply);
    CHECK(error.code == "invalid_frame");
    CHECK(error.message.find("frame.frames[1].seq") != std::string::npos);
    auto out = co_await stored_output(op, task_id, "stdout");
    CHECK(out.empty());  // not even the good first frame
  });
}

TEST_CASE("an agent that does not list frames.batch gets each ack alone", "[hub][batch]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    (void)co_await op.submit(submit_body("edge-1"));
    co_await agent.connect_and_hello();  // no capabilities
    auto spec = co_await dispatch(agent);
    co_await start(agent, spec);
    agent.send_raw(output_json(spec, "stdout", 1, 0, "a"));
    agent.send_raw(output_json(spec, "stderr", 1, 0, "b"));
    std::set<std::string> streams;
    for (int i = 0; i < 2; ++i) {
      auto text = co_await agent.socket()->receive();
      REQUIRE(text.ok());
      auto document = protocol::parse_json_object(*text, "message");
      REQUIRE(document.ok());
      CHECK(std::string((*document)["type"].GetString()) == "ack");
      streams.insert((*document)["stream"].GetString());
    }
    CHECK(streams == std::set<std::string>{"stderr", "stdout"});
    agent.close();
  });
}
