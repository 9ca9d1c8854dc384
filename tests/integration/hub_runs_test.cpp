// Fan-out runs at the hub (docs/protocol.md 11.5), written from the
// documents: scripted agents take their tasks by long poll (3) and report
// them on their channels (4.1); the run is read back through the operator
// API and its event stream.
#include "protocol/run_api.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;

namespace {

core::Co<void> hello_labelled(ScriptedAgent& agent) {
  protocol::AgentHello hello;
  hello.version = "test";
  hello.labels = {{"fleet", "a"}};
  (void)co_await agent.connect_and_hello(hello);
}

// Starts the task and ends it with `status` (exit code 0 or 1).
core::Co<void> finish(ScriptedAgent& agent, const protocol::TaskSpec& spec, AttemptStatus status) {
  co_await start(agent, spec);
  const int exit_code = status == AttemptStatus::kSucceeded ? 0 : 1;
  agent.send(
      protocol::TaskFinal{{spec.task_id, spec.attempt_id}, final_for(status, exit_code, "", "")},
      protocol::final_message_id(spec.attempt_id));
  auto ack = expect<protocol::Ack>(co_await agent.receive());
  REQUIRE(ack.acked == protocol::AckedKind::kFinal);
}

core::Co<protocol::RunView> submit_run(Operator& op, std::string body) {
  auto reply = co_await op.request("POST", "/api/v1/runs", body);
  REQUIRE(reply.ok());
  INFO(reply->body);
  REQUIRE(reply->status == 201);
  auto run = protocol::decode_run_view(reply->body);
  REQUIRE(run.ok());
  co_return std::move(*run);
}

core::Co<protocol::RunView> run_of(Operator& op, std::string id) {
  auto reply = co_await op.request("GET", "/api/v1/runs/" + id);
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  auto run = protocol::decode_run_view(reply->body);
  REQUIRE(run.ok());
  co_return std::move(*run);
}

// Follows the run's event stream until it ends (the run is over), then
// checks the run ended in `state`.
core::Co<protocol::RunView> run_reaching(Operator& op, std::string id, std::string state) {
  auto stream = co_await op.request("GET", "/api/v1/runs/" + id + "/events?output=0");
  REQUIRE(stream.ok());
  CHECK_THAT(stream->body, Catch::EndsWith("event: end\ndata: {}\n\n"));
  auto run = co_await run_of(op, id);
  INFO(stream->body);
  REQUIRE(run.state == state);
  co_return run;
}

}  // namespace

TEST_CASE("a run releases its tasks within max_concurrency and ends succeeded", "[hub][runs]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto one = world.agent("edge-1");
    auto two = world.agent("edge-2");
    co_await hello_labelled(one);
    co_await hello_labelled(two);
    auto run = co_await submit_run(
        op, R"({"selector":"fleet=a","command":{"argv":["true"]},"max_concurrency":1})");
    CHECK(run.state == "running");
    CHECK(run.max_concurrency == 1);
    REQUIRE(run.tasks.size() == 2);
    CHECK(run.counts["queued"] == 2);

    // One at a time: edge-2's task is held while edge-1's runs.
    auto first = co_await dispatch(one, 5);
    auto held = co_await two.poll(0);
    REQUIRE(held.ok());
    CHECK(held->status == 204);
    co_await finish(one, first, AttemptStatus::kSucceeded);
    auto second = co_await dispatch(two, 5);
    co_await finish(two, second, AttemptStatus::kSucceeded);
    auto done = co_await run_reaching(op, run.id, "succeeded");
    CHECK(done.counts["succeeded"] == 2);
    CHECK_FALSE(done.finished_at.empty());

    // The run's stream carries its tasks' events and its own, in order,
    // and resumes after Last-Event-ID.
    auto events = co_await op.request("GET", "/api/v1/runs/" + run.id + "/events?follow=0");
    REQUIRE(events.ok());
    const std::string& text = events->body;
    CHECK_THAT(text, Catch::Contains("event: run\ndata: {\"run_id\":\"" + run.id +
                                     "\",\"state\":\"running\""));
    CHECK_THAT(text, Catch::Contains("\"state\":\"succeeded\"") && Catch::Contains(first.task_id) &&
                         Catch::Contains(second.task_id));
    CHECK(text.find(first.task_id) < text.find(second.task_id));
    const size_t last_id_at = text.rfind("id: ");
    const std::string last_id =
        text.substr(last_id_at + 4, text.find('\n', last_id_at) - last_id_at - 4);
    auto resumed = co_await op.request(
        "GET", "/api/v1/runs/" + run.id + "/events?follow=0&last_event_id=" + last_id);
    REQUIRE(resumed.ok());
    CHECK_THAT(resumed->body, !Catch::Contains("id: "));
    one.close();
    two.close();
  });
}

TEST_CASE("past max_errors a run stops: tasks not released are skipped", "[hub][runs]") {
  World world;
  const std::string third_token =
      hub_command({"agent", "add", "edge-3", "--data-dir", world.data_dir});
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto one = world.agent("edge-1");
    auto two = world.agent("edge-2");
    ScriptedAgent three(world.loop, world.pool, *world.ws, world.hub.url(), "edge-3", third_token);
    co_await hello_labelled(one);
    co_await hello_labelled(two);
    co_await hello_labelled(three);
    auto run = co_await submit_run(
        op, R"({"selector":"fleet=a","command":{"argv":["false"]},"max_concurrency":1,)"
            R"("max_errors":0})");
    auto failing = co_await dispatch(one, 5);
    co_await finish(one, failing, AttemptStatus::kFailed);
    auto stopped = co_await run_reaching(op, run.id, "stopped");
    CHECK(stopped.counts["failed"] == 1);
    CHECK(stopped.counts["skipped"] == 2);
    CHECK(stopped.errors == 1);
    CHECK(stopped.stop_reason == "1 error, more than max_errors 0");
    for (const auto& task : stopped.tasks) {
      if (task.state == "skipped")
        CHECK(task.note == "run stopped: 1 error, more than max_errors 0");
    }
    auto none = co_await two.poll(0);
    REQUIRE(none.ok());
    CHECK(none->status == 204);
    one.close();
    two.close();
    three.close();
  });
}

TEST_CASE("a canary runs alone first; an offline agent's task is skipped after its timeout",
          "[hub][runs]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto one = world.agent("edge-1");
    co_await hello_labelled(one);
    // edge-2 never connects.
    auto run = co_await submit_run(
        op, R"({"agents":["edge-2","edge-1"],"command":{"argv":["true"]},"canary":1,)"
            R"("offline_timeout_s":1})");
    // The canary is the connected agent, released alone.
    auto canary = co_await dispatch(one, 5);
    auto view = co_await run_of(op, run.id);
    CHECK(view.counts["queued"] == 1);
    co_await finish(one, canary, AttemptStatus::kSucceeded);
    // Then edge-2's task is released; edge-2 stays offline: skipped after 1 s.
    auto ended = co_await run_reaching(op, run.id, "failed");
    CHECK(ended.counts["succeeded"] == 1);
    CHECK(ended.counts["skipped"] == 1);
    for (const auto& task : ended.tasks) {
      if (task.agent == "edge-2") CHECK(task.note == "agent edge-2 offline for 1 s");
    }
    one.close();
  });
}

TEST_CASE("a cancelled run skips what was not released and cancels what runs", "[hub][runs]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto one = world.agent("edge-1");
    auto two = world.agent("edge-2");
    co_await hello_labelled(one);
    co_await hello_labelled(two);
    auto run = co_await submit_run(
        op, R"({"selector":"fleet=a","command":{"argv":["sleep","60"]},"max_concurrency":1})");
    auto running = co_await dispatch(one, 5);
    co_await start(one, running);
    auto cancelled = co_await op.request("POST", "/api/v1/runs/" + run.id + "/cancel",
                                         R"({"reason":"wrong build"})");
    REQUIRE(cancelled.ok());
    CHECK(cancelled->status == 202);
    auto cancel = expect<protocol::TaskCancel>(co_await one.receive());
    CHECK(cancel.attempt.attempt_id == running.attempt_id);
    one.send(protocol::TaskFinal{{running.task_id, running.attempt_id},
                                 final_for(AttemptStatus::kCancelled, std::nullopt, "", "")},
             protocol::final_message_id(running.attempt_id));
    (void)co_await one.receive();
    auto ended = co_await run_reaching(op, run.id, "cancelled");
    CHECK(ended.counts["cancelled"] == 1);
    CHECK(ended.counts["skipped"] == 1);
    CHECK(ended.stop_reason == "cancelled: wrong build");
    auto again = co_await op.request("POST", "/api/v1/runs/" + run.id + "/cancel", "{}");
    REQUIRE(again.ok());
    CHECK(again->status == 409);
    one.close();
    two.close();
  });
}

TEST_CASE("run submissions are refused naming the field", "[hub][runs]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::vector<std::pair<std::string, std::string>> refused = {
        {R"({"command":{"argv":["true"]}})", "run.selector: give exactly one of selector"},
        {R"({"selector":"fleet=zzz","command":{"argv":["true"]}})",
         "run.selector: no agent matches 'fleet=zzz'"},
        {R"({"agents":["edge-9"],"command":{"argv":["true"]}})",
         "run.agents: no agent named 'edge-9'"},
        {R"({"agents":["edge-1"],"command":{"argv":["true"]},"max_concurrency":"150%"})",
         "run.max_concurrency: a percentage above 100"},
        {R"({"agents":["edge-1"],"command":{"argv":["true"]},"max_errors":"x"})",
         "run.max_errors: expected a count or a percentage"},
        {R"({"agents":["edge-1"],"command":{"argv":["true"]},"canary_count":1})",
         "run.canary_count: unknown field"},
    };
    for (const auto& [body, message] : refused) {
      auto answer = co_await op.request("POST", "/api/v1/runs", body);
      REQUIRE(answer.ok());
      INFO(body << " -> " << answer->body);
      CHECK(answer->status == 400);
      CHECK_THAT(answer->body, Catch::Contains(message));
    }
    auto runs = co_await op.request("GET", "/api/v1/runs");
    REQUIRE(runs.ok());
    CHECK(runs->body == R"({"runs":[]})");
  });
}

TEST_CASE("runs are listed newest first, a page at a time, of one state or all", "[hub][runs]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    const std::string body = R"({"agents":["edge-1"],"command":{"argv":["true"]}})";
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      auto run = co_await submit_run(op, body);
      ids.push_back(run.id);
    }
    auto first = co_await op.request("GET", "/api/v1/runs?limit=2");
    REQUIRE(first.ok());
    auto first_runs = protocol::decode_run_list(first->body);
    REQUIRE(first_runs.ok());
    REQUIRE(first_runs->size() == 2);
    CHECK((*first_runs)[0].id == ids[2]);
    CHECK((*first_runs)[1].id == ids[1]);
    auto next = co_await op.request("GET", "/api/v1/runs?limit=2&before=" + ids[1]);
    REQUIRE(next.ok());
    auto next_runs = protocol::decode_run_list(next->body);
    REQUIRE(next_runs.ok());
    REQUIRE(next_runs->size() == 1);
    CHECK((*next_runs)[0].id == ids[0]);

    auto cancelled = co_await op.request("POST", "/api/v1/runs/" + ids[1] + "/cancel");
    REQUIRE(cancelled.ok());
    REQUIRE(cancelled->status == 202);
    auto only = co_await op.request("GET", "/api/v1/runs?state=cancelled");
    REQUIRE(only.ok());
    auto only_runs = protocol::decode_run_list(only->body);
    REQUIRE(only_runs.ok());
    REQUIRE(only_runs->size() == 1);
    CHECK((*only_runs)[0].id == ids[1]);

    for (const std::string query : {"?state=paused", "?before=r-nope"}) {
      auto refused = co_await op.request("GET", "/api/v1/runs" + query);
      REQUIRE(refused.ok());
      INFO(query << " -> " << refused->body);
      CHECK(refused->status == 400);
      CHECK_THAT(refused->body, Catch::Contains(query.substr(1, query.find('=') - 1)));
    }
  });
}
