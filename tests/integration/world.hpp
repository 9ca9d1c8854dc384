// A fresh hub with two agents (edge-1, edge-2) and an operator, for one test.
#pragma once

#include <signal.h>

#include <catch2/catch.hpp>
#include <functional>

#include "cli/sse_parser.hpp"
#include "core/run.hpp"
#include "core/wall_clock.hpp"
#include "harness.hpp"
#include "protocol/sha256.hpp"
#include "protocol/task_spec.hpp"

namespace tether::test {

struct World {
  core::Loop loop;
  core::ThreadPool pool{8};
  TempDir dir;
  std::string data_dir = dir.path() + "/hub";
  std::string agent_token = hub_command({"agent", "add", "edge-1", "--data-dir", data_dir});
  std::string other_token = hub_command({"agent", "add", "edge-2", "--data-dir", data_dir});
  std::string admin_token = hub_command({"token", "admin", "--data-dir", data_dir});
  HubProcess hub;
  std::unique_ptr<core::WebSocketClient> ws;

  explicit World(std::vector<std::string> hub_args = {})
      : hub(loop, data_dir, std::move(hub_args)) {
    auto client = core::WebSocketClient::create(loop, {});
    REQUIRE(client.ok());
    ws = std::move(*client);
  }

  Operator op() { return Operator(loop, pool, hub.url(), admin_token); }
  ScriptedAgent agent(const std::string& name = "edge-1") {
    return ScriptedAgent(loop, pool, *ws, hub.url(), name,
                         name == "edge-1" ? agent_token : other_token);
  }

  // Starts the hub, runs `body`, then stops everything so the loop drains.
  // On failure the hub's log is printed: it usually says why.
  void run(const std::function<core::Co<void>()>& body) {
    auto scenario = [&]() -> core::Co<void> {
      co_await hub.start();
      std::exception_ptr failure;
      try {
        co_await body();
      } catch (...) {
        failure = std::current_exception();
      }
      // Tear down even after a failure, or the hub child keeps the loop alive;
      // and every other child the test started (a CLI, a viewer).
      ws.reset();
      co_await hub.stop(failure ? SIGKILL : SIGTERM);
      LoggedProcess::kill_all(loop);
      if (failure) std::rethrow_exception(failure);
    };
    try {
      core::run_to_completion(loop, scenario());
    } catch (...) {
      std::fprintf(stderr, "---- tether-hub log ----\n%s------------------------\n",
                   hub.log().c_str());
      throw;
    }
  }
};

// Polls once and returns the dispatched task (REQUIREs one).
inline core::Co<protocol::TaskSpec> dispatch(ScriptedAgent& agent, int wait_s = 5) {
  auto reply = co_await agent.poll(wait_s);
  REQUIRE(reply.ok());
  INFO(reply->body);
  REQUIRE(reply->status == 200);
  auto spec = protocol::decode_task(reply->body);
  REQUIRE(spec.ok());
  co_return std::move(*spec);
}

inline std::string submit_body(const std::string& agent, const std::string& extra = "") {
  return R"({"agent":")" + agent + R"(","command":{"argv":["true"]})" + extra + "}";
}

template <class T>
T expect(const Result<protocol::Frame>& frame) {
  if (!frame.ok())
    FAIL("expected a frame, got: " << frame.error().code << ": " << frame.error().message);
  INFO(protocol::encode_frame(*frame));
  REQUIRE(std::holds_alternative<T>(frame->payload));
  return std::get<T>(frame->payload);
}

inline protocol::TaskOutput output(const protocol::TaskSpec& spec, protocol::StreamName stream,
                                   uint64_t seq, uint64_t offset, std::string data) {
  return protocol::TaskOutput{{spec.task_id, spec.attempt_id},
                              {stream, seq, offset, std::move(data)}};
}

// Receives frames until an output ack for `stream` reaches `seq`; returns
// how many output acks that took.
inline core::Co<int> acks_through(ScriptedAgent& agent, protocol::StreamName stream, uint64_t seq) {
  int acks = 0;
  uint64_t through = 0;
  while (through < seq) {
    auto ack = expect<protocol::Ack>(co_await agent.receive());
    REQUIRE(ack.acked == protocol::AckedKind::kOutput);
    REQUIRE(ack.stream == stream);
    REQUIRE(ack.through_seq >= through);  // cumulative: never goes back
    through = ack.through_seq;
    ++acks;
  }
  REQUIRE(through == seq);
  co_return acks;
}

inline core::Co<void> start(ScriptedAgent& agent, const protocol::TaskSpec& spec) {
  agent.send(protocol::TaskStarted{{spec.task_id, spec.attempt_id}, {4242, core::utc_now()}},
             protocol::started_message_id(spec.attempt_id));
  auto ack = expect<protocol::Ack>(co_await agent.receive());
  REQUIRE(ack.acked == protocol::AckedKind::kStarted);
  REQUIRE(ack.related_message_id == protocol::started_message_id(spec.attempt_id));
}

// Submits `body`, opens the agent's channel, takes the task and reports it
// started: where most hub conversations begin. Returns the dispatched task.
inline core::Co<protocol::TaskSpec> started_task(Operator& op, ScriptedAgent& agent,
                                                 std::string body = submit_body("edge-1")) {
  const auto task_id = co_await op.submit(body);
  co_await agent.connect_and_hello();
  auto spec = co_await dispatch(agent);
  REQUIRE(spec.task_id == task_id);
  co_await start(agent, spec);
  co_return spec;
}

inline core::Co<std::string> stored_output(Operator& op, const std::string& task_id,
                                           const char* stream) {
  auto reply = co_await op.request("GET", "/api/v1/tasks/" + task_id + "/output?stream=" + stream);
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  co_return reply->body;
}

// The events of a whole SSE body (docs/protocol.md 11.1).
inline std::vector<cli::SseEvent> parse_sse(const std::string& text) {
  std::vector<cli::SseEvent> events;
  cli::SseParser parser([&](const cli::SseEvent& event) { events.push_back(event); });
  REQUIRE(parser.feed(text).ok());
  return events;
}

}  // namespace tether::test
