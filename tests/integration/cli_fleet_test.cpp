// `tether run --selector/--agents`, `runs`, `run-status` and `logs --run`:
// the real CLI against a ScriptedRunHub that plays the run API from its
// contract (src/protocol/run_api.hpp, docs/protocol.md 11.1). Each host's
// lines must come out whole, prefixed, byte-exact, on the right stream;
// the event stream is resumed after a drop with Last-Event-ID; the summary,
// --json and every exit status are checked.
#include <signal.h>

#include <catch2/catch.hpp>

#include "core/co_group.hpp"
#include "core/process.hpp"
#include "core/run.hpp"
#include "fleet_script.hpp"
#include "harness.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"
#include "protocol/run_api.hpp"
#include "scripted_run_hub.hpp"

using namespace tether;
using namespace tether::test;
using protocol::StreamName;

namespace {

// Splits `text` into the hosts' lines (each host's bytes, prefixes
// stripped) and what follows them (the summary: a line that begins with
// '[' or ' ', which no agent name does). REQUIREs every other line to be a
// known host's.
std::map<std::string, std::string> host_lines(const std::string& text,
                                              const std::vector<Host>& hosts,
                                              std::string* rest = nullptr) {
  std::map<std::string, std::string> by_host;
  size_t at = 0;
  while (at < text.size()) {
    if (text[at] == '[' && rest) {
      *rest = text.substr(at);
      break;
    }
    const size_t end = text.find('\n', at);
    REQUIRE(end != std::string::npos);
    const std::string line = text.substr(at, end + 1 - at);
    INFO("line: " << line);
    auto host = std::find_if(hosts.begin(), hosts.end(),
                             [&](const Host& h) { return line.rfind(h.agent + ": ", 0) == 0; });
    REQUIRE(host != hosts.end());
    by_host[host->agent] += line.substr(host->agent.size() + 2);
    at = end + 1;
  }
  return by_host;
}

const std::vector<Host> kMixedHosts = {
    {"edge-1", "t-1", "succeeded", 0, std::string("alpha\nbeta gamma\n\x00\x01\xff bin\n", 25),
     "warn: one\n", 2000},
    {"edge-2", "t-2", "failed", 3, "step 1\nstep 2\nstep 3\nstep 4\n",
     "error: disk full\nno newline at end", 500},
    {"edge-3", "t-3", "succeeded", 0, "edge-1: looks like a prefix\nlast\n", "", 1000},
};

}  // namespace

TEST_CASE("tether run --selector: each host's lines, prefixed and byte-exact, then a summary",
          "[cli][fleet]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    set_up(hub, kMixedHosts, "failed");
    // The submission's answer leaves edge-3 out: the CLI must ask again.
    hub.created_json = view_json({kMixedHosts[0], kMixedHosts[1]}, "running", false);
    // The first connection drops in the middle of an output event.
    hub.drop_after = 12;
    REQUIRE(hub.events[12].type == "output");
    const std::vector<std::string> run_args = {
        "run", "--selector",   "role==web", "--max-concurrency",
        "50%", "--max-errors", "1",         "--canary",
        "1",   "--",           "deploy",    "--now"};
    auto run = co_await world.cli(run_args);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);  // edge-2 failed; every agent's task ran

    auto stdout_by_host = host_lines(run.out, kMixedHosts);
    for (const auto& host : kMixedHosts)
      CHECK(stdout_by_host[host.agent] == host.out);
    std::string summary;
    auto stderr_by_host = host_lines(run.err, kMixedHosts, &summary);
    CHECK(stderr_by_host["edge-1"] == "warn: one\n");
    CHECK(stderr_by_host["edge-2"] == "error: disk full\nno newline at end\n");  // ended
    CHECK(stderr_by_host.count("edge-3") == 0);
    const std::string expected_summary =
        "[tether] run r-1 failed\n"
        "  2 succeeded, 1 failed\n"
        "  slowest: edge-1 2.0s, edge-3 1.0s, edge-2 0.5s\n"
        "  edge-2 failed, exit 3\n"
        "    out| step 2\n"
        "    out| step 3\n"
        "    out| step 4\n"
        "    err| error: disk full\n"
        "    err| no newline at end\n";
    CHECK(summary == expected_summary);

    // What was asked: the run as given, the stream twice (resumed after
    // the last whole event), the tails of the host that failed only.
    auto posted = hub.requests_to("POST", "/api/v1/runs");
    REQUIRE(posted.size() == 1);
    CHECK(posted[0].authorization == "Bearer tto_scripted_operator");
    auto request = protocol::decode_run_request(posted[0].body);
    REQUIRE(request.ok());
    CHECK(request->selector == "role=web");
    CHECK(request->max_concurrency == protocol::RunAmount{50, true});
    CHECK(request->max_errors == protocol::RunAmount{1, false});
    CHECK(request->canary == 1);
    CHECK(request->spec.argv == std::vector<std::string>{"deploy", "--now"});
    auto streams = hub.requests_to("GET", "/api/v1/runs/r-1/events");
    REQUIRE(streams.size() == 2);
    CHECK(streams[0].last_event_id.empty());
    CHECK(streams[1].last_event_id == std::to_string(hub.events[11].id));
    CHECK(hub.requests_to("GET", "/api/v1/runs/r-1").size() == 2);  // edge-3, then the end
    CHECK(hub.requests_to("GET", "/api/v1/tasks/t-2/output").size() == 2);
    CHECK(hub.requests_to("GET", "/api/v1/tasks/t-1/output").empty());
  });
}

TEST_CASE("tether run --json: no host lines, one object with the failed hosts' last lines",
          "[cli][fleet]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    set_up(hub, kMixedHosts, "failed");
    const std::vector<std::string> args = {"run",    "--agents", "edge-1,edge-2,edge-3",
                                           "--json", "--",       "deploy"};
    auto run = co_await world.cli(args);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 1);
    CHECK(run.err.empty());
    REQUIRE_FALSE(run.out.empty());
    CHECK(run.out.find('\n') == run.out.size() - 1);  // one line: the object
    auto view = protocol::decode_run_view(run.out);
    REQUIRE(view.ok());
    CHECK(view->state == "failed");
    REQUIRE(view->tasks.size() == 3);
    auto document = protocol::parse_json_object(run.out, "run");
    REQUIRE(document.ok());
    const auto& tasks = (*document)["tasks"];
    CHECK_FALSE(tasks[0].HasMember("last_lines"));
    REQUIRE(tasks[1]["last_lines"].IsArray());
    std::vector<std::string> lines;
    for (const auto& line : tasks[1]["last_lines"].GetArray())
      lines.emplace_back(line.GetString());
    CHECK(lines == std::vector<std::string>{"step 2", "step 3", "step 4", "error: disk full",
                                            "no newline at end"});
    auto request = protocol::decode_run_request(hub.requests_to("POST", "/api/v1/runs")[0].body);
    REQUIRE(request.ok());
    CHECK(request->agents == std::vector<std::string>{"edge-1", "edge-2", "edge-3"});
    auto streams = hub.requests_to("GET", "/api/v1/runs/r-1/events");
    REQUIRE(streams.size() == 1);
    CHECK(streams[0].query_value("output") == "0");
  });
}

TEST_CASE("tether run --selector exits 0, 4, 2 or 3 as documented", "[cli][fleet]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    const std::vector<Host> fine = {{"a", "t-1", "succeeded", 0, "ok\n", "", 100},
                                    {"b", "t-2", "succeeded", 0, "ok\n", "", 200}};
    set_up(hub, fine, "succeeded");
    const std::vector<std::string> all_good_args = {"run", "--selector", "role=web", "--", "true"};
    auto all_good = co_await world.cli(all_good_args);
    CHECK(all_good.exit_code == 0);
    CHECK(all_good.out == "a: ok\nb: ok\n");
    CHECK_THAT(all_good.err, Catch::StartsWith("[tether] run r-1 succeeded\n  2 succeeded\n"));
    CHECK(hub.requests_to("GET", "/api/v1/tasks/t-1/output").empty());

    const std::vector<Host> partial = {
        {"a", "t-1", "succeeded", 0, "ok\n", "", 100},
        {"b", "t-2", "failed", 1, "", "boom\n", 100},
        {"c", "t-3", "lost", std::nullopt, "half", "", 0, "agent c went away"},
        {"d", "t-4", "skipped", std::nullopt, "", "", 0, "agent offline for 60 s"}};
    set_up(hub, partial, "stopped");
    const std::vector<std::string> incomplete_args = {"run", "--selector", "role=web", "--", "x"};
    auto incomplete = co_await world.cli(incomplete_args);
    CHECK(incomplete.exit_code == 4);  // lost and skipped win over failed
    CHECK(incomplete.out == "a: ok\nc: half\n");
    CHECK_THAT(incomplete.err,
               Catch::Contains("  1 succeeded, 1 failed, 1 lost, 1 skipped\n") &&
                   Catch::Contains("  b failed, exit 1\n    err| boom\n") &&
                   Catch::Contains("  c lost: agent c went away\n    out| half\n") &&
                   Catch::Contains("  d skipped: agent offline for 60 s\n"));

    const size_t asked = hub.requests().size();
    const std::vector<std::string> both_args = {"run", "--selector", "a", "--agents",
                                                "b",   "--",         "x"};
    auto both = co_await world.cli(both_args);
    CHECK(both.exit_code == 2);
    const std::vector<std::string> bad_amount_args = {"run", "--agents", "a", "--max-errors",
                                                      "x",   "--",       "y"};
    auto bad_amount = co_await world.cli(bad_amount_args);
    CHECK(bad_amount.exit_code == 2);
    CHECK_THAT(bad_amount.err, Catch::Contains("--max-errors: expected a count"));
    CHECK(hub.requests().size() == asked);  // nothing was sent

    hub.created_status = 403;
    hub.created_json =
        R"({"error":{"code":"forbidden","message":"token 'v' has role viewer","retryable":false}})";
    const std::vector<std::string> refused_args = {"run", "--selector", "role=web", "--", "x"};
    auto refused = co_await world.cli(refused_args);
    CHECK(refused.exit_code == 3);
    CHECK_THAT(refused.err, Catch::Contains("token 'v' has role viewer"));
    const std::vector<std::string> unreachable_args = {"run", "--selector", "role=web", "--", "x"};
    const std::vector<std::string> nowhere = {"TETHER_HUB_URL=http://127.0.0.1:1",
                                              "TETHER_TOKEN_FILE=" + world.token_file};
    auto unreachable = co_await run_cli(world.loop, unreachable_args, nowhere);
    CHECK(unreachable.exit_code == 3);
  });
}

TEST_CASE("Ctrl-C stops following a run, or with --cancel-on-interrupt cancels it first",
          "[cli][fleet]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    for (const bool cancel : {false, true}) {
      const std::vector<Host> hosts = {
          {"edge-1", "t-1", "cancelled", std::nullopt, "tick\ntoc", "", 0, "cancelled"},
          {"edge-2", "t-2", "skipped", std::nullopt, "", "", 0, "the run was cancelled"}};
      hub.created_json = view_json(hosts, "running", false);
      hub.final_json = view_json(hosts, "cancelled", true);
      hub.outputs["t-1/stdout"] = "tick\ntoc";
      EventScript script;
      script.run("running");
      script.status("t-1", "running");
      script.output("t-1", StreamName::kStdout, "tick\ntoc");
      hub.events = script.events;
      hub.hold_open = true;
      // The interrupt closed the CLI's stream; it comes back after the
      // cancel and finds the run's end.
      hub.on_cancel = [&hub] {
        EventScript rest;
        rest.events = hub.events;
        rest.status("t-1", "cancelled");
        rest.status("t-2", "skipped");
        rest.run("cancelled", "interrupted from tether run");
        hub.events = rest.events;
        hub.hold_open = false;
        hub.end();
      };
      std::vector<std::string> args = {"run", "--selector", "role=web"};
      if (cancel) args.push_back("--cancel-on-interrupt");
      args.insert(args.end(), {"--", "sleep", "600"});
      auto cli = start_cli(world.loop, args, world.environment());
      CliRun run;
      core::CoGroup readers;
      readers.spawn(read_all(cli->stderr_reader(), run.err));
      // Interrupt once the CLI has shown the first line: it is following.
      while (run.out.find("edge-1: tick\n") == std::string::npos) {
        auto chunk = co_await cli->stdout_reader().read();
        REQUIRE(chunk.ok());
        REQUIRE_FALSE(chunk->end_of_stream);
        run.out.append(chunk->bytes);
      }
      ::kill(cli->pid(), SIGINT);
      co_await read_all(cli->stdout_reader(), run.out);
      co_await finish_cli(*cli, readers, run);
      INFO("stderr: " << run.err);
      CHECK(run.exit_code == 130);
      // The line the host left open is shown all the same, ended.
      CHECK(run.out == "edge-1: tick\nedge-1: toc\n");
      auto cancels = hub.requests_to("POST", "/api/v1/runs/r-1/cancel");
      if (cancel) {
        REQUIRE(cancels.size() == 1);
        CHECK_THAT(cancels[0].body, Catch::Contains("interrupted"));
        CHECK_THAT(run.err, Catch::Contains("cancelling run r-1") &&
                                Catch::Contains("[tether] run r-1 cancelled\n"
                                                "  1 cancelled, 1 skipped\n"));
      } else {
        CHECK(cancels.empty());
        CHECK_THAT(run.err, Catch::Contains("stopped following run r-1; it keeps running"));
        CHECK_THAT(run.err, !Catch::Contains("[tether] run"));
        CHECK(hub.requests_to("GET", "/api/v1/runs/r-1/events").size() == 1);
        hub.end();  // the stream the CLI left
      }
      hub.hold_open = false;
      hub.on_cancel = nullptr;
      hub.requests_clear();
    }
  });
}

TEST_CASE("tether runs, run-status and logs --run", "[cli][fleet]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    set_up(hub, kMixedHosts, "failed");
    hub.list_json = R"({"runs":[)" + view_json(kMixedHosts, "failed", true) + "]}";
    const std::vector<std::string> runs_args = {"runs", "--limit", "5"};
    auto runs = co_await world.cli(runs_args);
    CHECK(runs.exit_code == 0);
    CHECK_THAT(runs.out, Catch::StartsWith("RUN ") && Catch::Contains("r-1") &&
                             Catch::Contains("role=web") &&
                             Catch::Contains("2 succeeded, 1 failed"));
    CHECK(hub.requests().back().query_value("limit") == "5");
    const std::vector<std::string> runs_json_args = {"runs", "--json"};
    auto runs_json = co_await world.cli(runs_json_args);
    CHECK(runs_json.out == hub.list_json + "\n");

    const std::vector<std::string> status_args = {"run-status", "r-1"};
    auto status = co_await world.cli(status_args);
    CHECK(status.exit_code == 0);
    CHECK_THAT(status.out, Catch::Contains("state     failed\n") &&
                               Catch::Contains("command   deploy\n") &&
                               Catch::Contains("\nedge-2 ") && Catch::Contains(" 0.5s"));

    // logs --run: edge-2's task, shown as `tether logs t-2` shows it.
    hub.task_json["t-2"] = R"({"id":"t-2","agent":"edge-2","state":"failed"})";
    EventScript task;
    task.output("t-2", StreamName::kStdout, kMixedHosts[1].out);
    task.output("t-2", StreamName::kStderr, kMixedHosts[1].err);
    task.final("t-2", protocol::AttemptStatus::kFailed, 3, kMixedHosts[1].out, kMixedHosts[1].err);
    task.status("t-2", "failed");
    hub.task_events["t-2"] = task.events;
    const std::vector<std::string> logs_args = {"logs", "--run", "r-1", "--agent", "edge-2"};
    auto logs = co_await world.cli(logs_args);
    CHECK(logs.out == kMixedHosts[1].out);
    CHECK(logs.err == kMixedHosts[1].err);
    CHECK(logs.exit_code == 3);  // the task's own exit code, as `tether logs` gives it
    const std::vector<std::string> nobody_args = {"logs", "--run", "r-1", "--agent", "edge-9"};
    auto nobody = co_await world.cli(nobody_args);
    CHECK(nobody.exit_code == 3);
    CHECK_THAT(nobody.err, Catch::Contains("run r-1 has no task for agent edge-9 (its agents: "
                                           "edge-1, edge-2, edge-3)"));
    const std::vector<std::string> half_args = {"logs", "--run", "r-1"};
    auto half = co_await world.cli(half_args);
    CHECK(half.exit_code == 2);
  });
}
