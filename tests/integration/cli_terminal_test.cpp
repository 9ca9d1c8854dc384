// What the CLI does to the operator's terminal and pipes: it never erases a
// line of the task's, stops at once when its reader goes away, takes options
// before or after the task id, and shows text from agents and the hub with
// every control character made visible.
#include "core/process.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;
using protocol::StreamName;

namespace {

std::vector<std::string> cli_environment(World& world) {
  return {"TETHER_HUB_URL=" + world.hub.url(),
          "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token),
          "PATH=/usr/bin:/bin"};
}

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::unique_ptr<core::Process> start_shell(World& world, const std::string& script) {
  core::SpawnOptions options;
  options.argv = {"/bin/bash", "-c", script};
  options.environment = cli_environment(world);
  auto process = core::Process::spawn(world.loop, options);
  REQUIRE(process.ok());
  return std::move(*process);
}

core::Co<protocol::TaskSpec> next_task(ScriptedAgent& agent) {
  auto reply = co_await agent.poll(10);
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  auto spec = protocol::decode_task(reply->body);
  REQUIRE(spec.ok());
  agent.send(protocol::TaskStarted{{spec->task_id, spec->attempt_id}, {7, core::utc_now()}});
  co_return std::move(*spec);
}

}  // namespace

TEST_CASE("on a terminal, a last line without a newline is never erased", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    for (const StreamName stream : {StreamName::kStdout, StreamName::kStderr}) {
      // script(1) gives the CLI a terminal and records what reached it.
      auto cli =
          start_shell(world, "exec script -qfec " +
                                 quoted(quoted(cli_binary()) + " run --agent edge-1 -- printf x") +
                                 " /dev/null");
      CliRun run;
      core::CoGroup readers;
      readers.spawn(read_all(cli->stdout_reader(), run.out));
      readers.spawn(read_all(cli->stderr_reader(), run.err));
      auto spec = co_await next_task(agent);
      const std::string text = "important result";
      agent.send(protocol::TaskOutput{{spec.task_id, spec.attempt_id}, {stream, 1, 0, text}});
      agent.send(protocol::TaskFinal{
          {spec.task_id, spec.attempt_id},
          final_for(AttemptStatus::kSucceeded, 0, stream == StreamName::kStdout ? text : "",
                    stream == StreamName::kStderr ? text : "")});
      co_await finish_cli(*cli, readers, run);
      INFO(run.out);
      CHECK(run.exit_code == 0);
      const size_t at = run.out.find(text);
      REQUIRE(at != std::string::npos);
      // What follows the text on the terminal starts a new line ("\r\n": the
      // terminal's newline); a "\r" alone would start over the line.
      CHECK(run.out.compare(at + text.size(), 2, "\r\n") == 0);
      CHECK_THAT(run.out, Catch::Contains("[tether] " + spec.task_id + " succeeded"));
    }
    agent.close();
  });
}

TEST_CASE("when its stdout's reader goes away, the CLI stops at once and ends like `yes | head`",
          "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    auto cli = start_shell(world, quoted(cli_binary()) +
                                      " run --agent edge-1 -- yes | head -1; "
                                      "echo \"status=${PIPESTATUS[0]}\" >&2");
    CliRun run;
    core::CoGroup readers;
    readers.spawn(read_all(cli->stdout_reader(), run.out));
    readers.spawn(read_all(cli->stderr_reader(), run.err));
    auto spec = co_await next_task(agent);
    // The task keeps writing, as `yes` would, until the CLI is gone.
    bool done = false;
    auto produce = [&]() -> core::Co<void> {
      for (uint64_t seq = 1; seq <= 400 && !done; ++seq) {
        agent.send(protocol::TaskOutput{{spec.task_id, spec.attempt_id},
                                        {StreamName::kStdout, seq, (seq - 1) * 2, "y\n"}});
        auto paused = co_await core::sleep_for(world.loop, 25);
        (void)paused;
      }
    };
    core::CoGroup producer;
    producer.spawn(produce());
    co_await finish_cli(*cli, readers, run);
    done = true;
    co_await producer.join();
    CHECK(run.out == "y\n");
    CHECK_THAT(run.err, Catch::Contains("status=141"));
    CHECK_THAT(run.err, Catch::Contains("Re-attach with: tether logs -f " + spec.task_id));
    auto state = co_await world.op().state_of(spec.task_id);
    CHECK(state == "running");  // it keeps running
    agent.close();
  });
}

TEST_CASE("options go before or after the task id", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto spec = co_await next_task(agent);
    agent.send(protocol::TaskOutput{{spec.task_id, spec.attempt_id},
                                    {StreamName::kStdout, 1, 0, "done\n"}});
    agent.send(protocol::TaskFinal{{spec.task_id, spec.attempt_id},
                                   final_for(AttemptStatus::kFailed, 4, "done\n", "")});
    const bool ended = co_await op.wait_for_state(task_id, "failed", 10'000);
    REQUIRE(ended);
    const auto environment = cli_environment(world);
    const std::vector<std::vector<std::string>> spellings = {
        {"logs", "-f", task_id}, {"logs", task_id, "-f"}, {"logs", "--follow", task_id}};
    for (const auto& args : spellings) {
      auto run = co_await run_cli(world.loop, args, environment);
      INFO(args[1] << " " << args[2] << ": " << run.err);
      CHECK(run.exit_code == 4);  // followed to the end: the task's status
      CHECK(run.out == "done\n");
    }
    const std::vector<std::string> json_first = {"status", "--json", task_id};
    auto json = co_await run_cli(world.loop, json_first, environment);
    CHECK(json.exit_code == 0);
    CHECK_THAT(json.out, Catch::Contains(R"("state":"failed")"));
    const std::vector<std::string> reason_last = {"cancel", task_id, "--reason", "late"};
    auto cancel = co_await run_cli(world.loop, reason_last, environment);
    CHECK(cancel.exit_code == 3);  // it already ended: the hub says so
    CHECK_THAT(cancel.err, Catch::Contains("already ended"));
    agent.close();
  });
}

TEST_CASE("text from agents and the hub reaches the terminal with its control characters visible",
          "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    const std::string nasty =
        "1.0\x1b]0;owned\x07\x1b[2J\xc2\x9b"
        "31m";
    auto agent = world.agent();
    protocol::AgentHello hello;
    hello.version = nasty;  // what an agent says about itself
    co_await agent.connect_and_hello(hello);
    auto op = world.op();
    const auto task_id = co_await op.submit(submit_body("edge-1"));
    auto spec = co_await next_task(agent);
    auto report = final_for(AttemptStatus::kFailed, 1, "", "");
    report.error = "could not start\x1b[2J";  // what an agent says about a task
    agent.send(protocol::TaskFinal{{spec.task_id, spec.attempt_id}, report});
    const bool ended = co_await op.wait_for_state(task_id, "failed", 10'000);
    REQUIRE(ended);
    const auto environment = cli_environment(world);

    const std::vector<std::string> agents_args = {"agents"};
    auto agents = co_await run_cli(world.loop, agents_args, environment);
    CHECK(agents.exit_code == 0);
    CHECK_THAT(agents.out, Catch::Contains("1.0\\e]0;owned\\x07\\e[2J\\u009b31m"));
    const std::vector<std::string> agents_json_args = {"agents", "--json"};
    auto agents_json = co_await run_cli(world.loop, agents_json_args, environment);
    CHECK_THAT(agents_json.out, Catch::Contains("\\u009b31m"));

    const std::vector<std::string> status_args = {"status", task_id};
    auto status = co_await run_cli(world.loop, status_args, environment);
    CHECK_THAT(status.out, Catch::Contains("could not start\\e[2J"));
    // A hub message that quotes what it was given.
    const std::vector<std::string> missing_args = {"status", "t-\x1b[31mX"};
    auto missing = co_await run_cli(world.loop, missing_args, environment);
    CHECK(missing.exit_code == 3);
    CHECK_THAT(missing.err, Catch::Contains("t-\\e[31mX"));
    for (const auto* run : {&agents, &agents_json, &status, &missing}) {
      CHECK(run->out.find('\x1b') == std::string::npos);
      CHECK(run->err.find('\x1b') == std::string::npos);
      CHECK(run->out.find("\xc2\x9b") == std::string::npos);
    }
    agent.close();
  });
}
