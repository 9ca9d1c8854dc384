// `tether run` end to end: the real CLI process against a real hub, with a
// scripted agent producing the output. stdout, stderr and the exit code
// must come out byte-exact.
#include <signal.h>

#include <filesystem>

#include "core/process.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;
using protocol::StreamName;

namespace {

// Starts `tether <args>` against the world's hub with an operator token file.
std::unique_ptr<core::Process> start_cli(World& world, const std::vector<std::string>& args) {
  return test::start_cli(
      world.loop, args,
      {"TETHER_HUB_URL=" + world.hub.url(),
       "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)});
}

}  // namespace

TEST_CASE("tether run reproduces stdout, stderr and the exit code byte-exact", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto cli = start_cli(world, {"run", "--agent", "edge-1", "--", "/bin/sh", "-c", "whatever"});
    CliRun run;
    core::CoGroup readers;
    readers.spawn(read_all(cli->stdout_reader(), run.out));
    readers.spawn(read_all(cli->stderr_reader(), run.err));

    auto agent = world.agent();
    co_await agent.connect_and_hello();
    auto reply = co_await agent.poll(10);  // waits for the CLI's submission
    REQUIRE(reply.ok());
    REQUIRE(reply->status == 200);
    auto spec = protocol::decode_task(reply->body);
    REQUIRE(spec.ok());
    CHECK(spec->argv == std::vector<std::string>{"/bin/sh", "-c", "whatever"});

    // Binary stdout (base64 on the wire) and text stderr, interleaved.
    std::string out_bytes;
    for (int i = 0; i < 256; ++i)
      out_bytes.push_back(static_cast<char>(i));
    const std::string text = "caf\xC3\xA9 line\n";
    const std::string err_bytes = "warning: something\nsecond line without newline";
    agent.send(protocol::TaskStarted{{spec->task_id, spec->attempt_id}, {99, core::utc_now()}});
    agent.send(protocol::TaskOutput{{spec->task_id, spec->attempt_id},
                                    {StreamName::kStdout, 1, 0, out_bytes}});
    agent.send(protocol::TaskOutput{{spec->task_id, spec->attempt_id},
                                    {StreamName::kStderr, 1, 0, err_bytes.substr(0, 19)}});
    agent.send(protocol::TaskOutput{{spec->task_id, spec->attempt_id},
                                    {StreamName::kStdout, 2, 256, text}});
    agent.send(protocol::TaskOutput{{spec->task_id, spec->attempt_id},
                                    {StreamName::kStderr, 2, 19, err_bytes.substr(19)}});
    agent.send(
        protocol::TaskFinal{{spec->task_id, spec->attempt_id},
                            final_for(AttemptStatus::kFailed, 3, out_bytes + text, err_bytes)});
    co_await finish_cli(*cli, readers, run);
    CHECK(run.exit_code == 3);
    CHECK(run.out == out_bytes + text);
    CHECK(run.err == err_bytes);  // no terminal: nothing but the task's own bytes
    agent.close();
  });
}

TEST_CASE("tether run maps signals and timeouts to documented exit codes", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    struct Case {
      AttemptStatus status;
      std::optional<int64_t> exit_code;
      std::optional<int64_t> signal;
      int expected;
    };
    const Case cases[] = {
        {AttemptStatus::kFailed, std::nullopt, 9, 137},
        {AttemptStatus::kTimedOut, std::nullopt, 15, 124},
        {AttemptStatus::kSucceeded, 0, std::nullopt, 0},
        {AttemptStatus::kFailed, std::nullopt, std::nullopt, 127},
    };
    for (const auto& c : cases) {
      auto cli = start_cli(world, {"run", "--agent", "edge-1", "--", "x"});
      CliRun run;
      core::CoGroup readers;
      readers.spawn(read_all(cli->stdout_reader(), run.out));
      readers.spawn(read_all(cli->stderr_reader(), run.err));
      auto reply = co_await agent.poll(10);
      REQUIRE(reply.ok());
      REQUIRE(reply->status == 200);
      auto spec = protocol::decode_task(reply->body);
      REQUIRE(spec.ok());
      auto report = final_for(c.status, c.exit_code, "", "");
      report.signal = c.signal;
      agent.send(protocol::TaskFinal{{spec->task_id, spec->attempt_id}, report});
      co_await finish_cli(*cli, readers, run);
      INFO(protocol::to_string(c.status) << " " << run.err);
      CHECK(run.exit_code == c.expected);
      CHECK(run.out.empty());
    }
    agent.close();
  });
}

TEST_CASE("tether refuses a token file readable by others and bad usage, clearly", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    const std::string loose = world.dir.write_secret("loose.token", world.admin_token);
    std::filesystem::permissions(loose, std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::add);
    // Arguments named first: no braced lists inside a co_await operand.
    const std::vector<std::string> args = {"tasks"};
    const std::vector<std::string> environment = {"TETHER_HUB_URL=" + world.hub.url(),
                                                  "TETHER_TOKEN_FILE=" + loose};
    auto run = co_await run_cli(world.loop, args, environment);
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Catch::Contains("mode 0640") && Catch::Contains("chmod 600"));
    CHECK(run.err.find(world.admin_token) == std::string::npos);

    const std::vector<std::string> no_agent = {"run", "--", "true"};
    const std::vector<std::string> good = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)};
    auto missing_agent = co_await run_cli(world.loop, no_agent, good);
    CHECK(missing_agent.exit_code == 2);
    CHECK_THAT(missing_agent.err, Catch::Contains("run: give --agent NAME, or --any SELECTOR"));
  });
}

TEST_CASE("Ctrl-C stops following without cancelling, unless --cancel-on-interrupt", "[cli]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto agent = world.agent();
    co_await agent.connect_and_hello();
    for (const bool cancel : {false, true}) {
      std::vector<std::string> args = {"run", "--agent", "edge-1"};
      if (cancel) args.push_back("--cancel-on-interrupt");
      args.insert(args.end(), {"--", "sleep", "600"});
      auto cli = start_cli(world, args);
      CliRun run;
      core::CoGroup readers;
      readers.spawn(read_all(cli->stderr_reader(), run.err));
      auto reply = co_await agent.poll(10);
      REQUIRE(reply.ok());
      REQUIRE(reply->status == 200);
      auto spec = protocol::decode_task(reply->body);
      REQUIRE(spec.ok());
      agent.send(protocol::TaskStarted{{spec->task_id, spec->attempt_id}, {7, core::utc_now()}});
      agent.send(protocol::TaskOutput{{spec->task_id, spec->attempt_id},
                                      {StreamName::kStdout, 1, 0, "tick\n"}});
      // Interrupt once the CLI has shown the output: it is following by then.
      std::string out;
      while (out.find("tick\n") == std::string::npos) {
        auto chunk = co_await cli->stdout_reader().read();
        REQUIRE(chunk.ok());
        REQUIRE_FALSE(chunk->end_of_stream);
        out.append(chunk->bytes);
      }
      ::kill(cli->pid(), SIGINT);
      if (cancel) {
        // The hub passes the cancel on; the task ends cancelled and the CLI
        // exits with the cancelled status.
        auto frame = co_await agent.receive();
        while (frame.ok() && std::holds_alternative<protocol::Ack>(frame->payload)) {
          frame = co_await agent.receive();
        }
        auto cancel_frame = expect<protocol::TaskCancel>(frame);
        CHECK(cancel_frame.attempt.attempt_id == spec->attempt_id);
        CHECK_THAT(cancel_frame.reason, Catch::Contains("interrupted"));
        auto report = final_for(AttemptStatus::kCancelled, std::nullopt, "tick\n", "");
        report.signal = 15;
        agent.send(protocol::TaskFinal{{spec->task_id, spec->attempt_id}, report});
      }
      co_await read_all(cli->stdout_reader(), out);
      co_await finish_cli(*cli, readers, run);
      if (cancel) {
        CHECK(run.exit_code == 125);
        // Following again after the cancel resumes after what was shown.
        CHECK(out == "tick\n");
      } else {
        CHECK(run.exit_code == 130);
        CHECK_THAT(run.err, Catch::Contains("keeps running") &&
                                Catch::Contains("tether logs -f " + spec->task_id));
        Operator op = world.op();
        auto state = co_await op.state_of(spec->task_id);
        CHECK(state == "running");
      }
    }
    agent.close();
  });
}
