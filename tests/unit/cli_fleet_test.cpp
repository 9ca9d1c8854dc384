// The pure parts of `tether run --selector/--agents` (docs/cli.md, Fleets):
// the per-host line assembler (byte-exact, never two hosts in one line),
// the options, the summary, the --json object and the exit-status rule.
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "cli/command_line.hpp"
#include "cli/command_table.hpp"
#include "cli/host_line_assembler.hpp"
#include "cli/output_tail.hpp"
#include "cli/run_exit_status.hpp"
#include "cli/run_follower.hpp"
#include "cli/run_options.hpp"
#include "cli/run_summary.hpp"
#include "cli/run_view_text.hpp"
#include "cli/sse_parser.hpp"
#include "protocol/json_reader.hpp"

using namespace tether;

namespace {

// What the assembler wrote, per descriptor, and each write as it came.
struct Written {
  std::map<int, std::string> bytes;
  std::vector<std::string> writes;
};

cli::HostLineAssembler assembler_into(Written& written, size_t max_line_bytes = 1 << 20,
                                      size_t max_pending_bytes = 64 << 20) {
  return cli::HostLineAssembler(
      [&written](int fd, std::string_view lines) {
        written.bytes[fd].append(lines);
        written.writes.emplace_back(lines);
      },
      max_line_bytes, max_pending_bytes);
}

// Splits prefixed text back into each host's bytes; FAILs on a line that
// does not begin with a known host's prefix.
std::map<std::string, std::string> strip_prefixes(const std::string& text,
                                                  const std::vector<std::string>& hosts) {
  std::map<std::string, std::string> by_host;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    REQUIRE(end != std::string::npos);  // only whole lines are written
    const std::string line = text.substr(at, end + 1 - at);
    bool known = false;
    for (const auto& host : hosts) {
      if (line.rfind(host + ": ", 0) == 0) {
        by_host[host] += line.substr(host.size() + 2);
        known = true;
        break;
      }
    }
    INFO("line: " << line);
    REQUIRE(known);
    at = end + 1;
  }
  return by_host;
}

std::string random_output(std::mt19937& random, const std::string& other_host) {
  std::uniform_int_distribution<int> length(0, 400);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> kind(0, 9);
  std::string out;
  const int size = length(random);
  for (int i = 0; i < size; ++i) {
    const int k = kind(random);
    if (k == 0) {
      out += '\n';
    } else if (k == 1) {
      out += other_host + ": ";  // looks like a prefix, inside a line
    } else {
      out += static_cast<char>(byte(random));
    }
  }
  return out + "\n";
}

protocol::RunTaskView task(std::string agent, std::string state, std::optional<int64_t> exit,
                           std::string started = "", std::string finished = "") {
  protocol::RunTaskView view;
  view.agent = agent;
  view.task_id = "t-" + agent;
  view.state = std::move(state);
  view.exit_code = exit;
  view.started_at = std::move(started);
  view.finished_at = std::move(finished);
  return view;
}

protocol::RunView run_of(std::string state, std::vector<protocol::RunTaskView> tasks) {
  protocol::RunView run;
  run.id = "r-1";
  run.state = std::move(state);
  run.selector = "role=web";
  run.tasks = std::move(tasks);
  return run;
}

cli::CommandLine command_line(const std::vector<std::string>& words) {
  auto line = cli::parse_command_line(words, cli::command_options().at("run"));
  REQUIRE(line.ok());
  return *line;
}

}  // namespace

TEST_CASE("host lines: random splits of several hosts, interleaved, come out byte-exact",
          "[cli][fleet]") {
  const std::vector<std::string> hosts = {"edge-1", "edge-2", "web.eu-3", "x"};
  for (unsigned seed = 1; seed <= 200; ++seed) {
    std::mt19937 random(seed);
    // Each host's stdout and stderr, and the pieces they arrive in.
    std::map<std::pair<std::string, int>, std::string> expected;
    std::vector<std::pair<std::pair<std::string, int>, std::string>> pieces;
    std::map<std::pair<std::string, int>, size_t> sent;
    for (size_t h = 0; h < hosts.size(); ++h) {
      for (int fd : {1, 2})
        expected[{hosts[h], fd}] = random_output(random, hosts[(h + 1) % hosts.size()]);
    }
    Written written;
    auto lines = assembler_into(written);
    std::uniform_int_distribution<size_t> pick(0, expected.size() - 1);
    std::uniform_int_distribution<size_t> cut(0, 40);
    for (bool left = true; left;) {
      auto it = std::next(expected.begin(), static_cast<long>(pick(random)));
      size_t& at = sent[it->first];
      const size_t size = std::min(cut(random), it->second.size() - at);
      lines.add("t-" + it->first.first, it->first.first, it->first.second,
                std::string_view(it->second).substr(at, size));
      at += size;
      left = false;
      for (const auto& [key, bytes] : expected)
        left = left || sent[key] < bytes.size();
    }
    CHECK(lines.pending_bytes() == 0);  // every output ended with a newline
    for (const auto& write : written.writes)
      CHECK((!write.empty() && write.back() == '\n'));
    for (int fd : {1, 2}) {
      auto by_host = strip_prefixes(written.bytes[fd], hosts);
      for (const auto& host : hosts) {
        INFO("seed " << seed << " host " << host << " fd " << fd);
        CHECK(by_host[host] == expected[{host, fd}]);
      }
    }
  }
}

TEST_CASE("host lines: a partial last line is written at the task's end, with a newline",
          "[cli][fleet]") {
  Written written;
  auto lines = assembler_into(written);
  lines.add("t-1", "edge-1", 1, "one\ntw");
  lines.add("t-2", "edge-2", 1, "other");
  lines.add("t-1", "edge-1", 2, "err");
  CHECK(written.bytes[1] == "edge-1: one\n");
  CHECK(lines.pending_bytes() == 10);  // "tw", "other", "err"
  lines.add("t-1", "edge-1", 1, "o");
  lines.finish("t-1");
  CHECK(written.bytes[1] == "edge-1: one\nedge-1: two\n");
  CHECK(written.bytes[2] == "edge-1: err\n");
  lines.finish_all();
  CHECK(written.bytes[1] == "edge-1: one\nedge-1: two\nedge-2: other\n");
  CHECK(lines.pending_bytes() == 0);
  lines.finish_all();  // nothing left: nothing written
  CHECK(written.writes.size() == 4);
}

TEST_CASE("host lines: a line longer than the bound is written in pieces", "[cli][fleet]") {
  Written written;
  auto lines = assembler_into(written, 4);
  lines.add("t-1", "a", 1, "1234");  // exactly the bound: held, not split
  CHECK(written.bytes[1].empty());
  lines.add("t-1", "a", 1, "\n123456789\nxy");
  CHECK(written.bytes[1] == "a: 1234\na: 1234\na: 5678\na: 9\n");
  CHECK(lines.pending_bytes() == 2);
}

TEST_CASE("host lines: all hosts together hold a bounded number of bytes", "[cli][fleet]") {
  Written written;
  auto lines = assembler_into(written, 100, 10);
  lines.add("t-1", "a", 1, "12345");
  lines.add("t-2", "b", 1, "12345");
  CHECK(written.bytes[1].empty());
  CHECK(lines.pending_bytes() == 10);
  lines.add("t-3", "c", 2, "1\n23");  // over the bound: c's open line goes out
  CHECK(written.bytes[2] == "c: 1\nc: 23\n");
  CHECK(lines.pending_bytes() == 10);
  lines.finish_all();
  CHECK(written.bytes[1] == "a: 12345\nb: 12345\n");
}

TEST_CASE("attempt ids name their task", "[cli][fleet]") {
  CHECK(cli::task_id_of_attempt("t-5d1c0a0e-a1") == "t-5d1c0a0e");
  CHECK(cli::task_id_of_attempt("t-1-a12") == "t-1");
  CHECK(cli::task_id_of_attempt("t-1") == "t-1");
  CHECK(cli::task_id_of_attempt("t-1-a") == "t-1-a");
  CHECK(cli::task_id_of_attempt("t-1-ax") == "t-1-ax");
  CHECK(cli::is_terminal_task_state("skipped"));
  CHECK_FALSE(cli::is_terminal_task_state("running"));
}

TEST_CASE("the last lines of a stream's end", "[cli][fleet]") {
  using V = std::vector<std::string>;
  CHECK(cli::last_lines("a\nb\nc\nd\n", 3, true) == V{"b", "c", "d"});
  CHECK(cli::last_lines("a\n\nb", 3, true) == V{"a", "", "b"});
  CHECK(cli::last_lines("only", 3, true) == V{"only"});
  CHECK(cli::last_lines("cut off\nx\n", 3, false) == V{"x"});
  CHECK(cli::last_lines("", 3, true).empty());
}

TEST_CASE("a fan-out run's exit status", "[cli][fleet]") {
  using protocol::RunTaskView;
  auto status = [](std::vector<std::string> states) {
    std::vector<RunTaskView> tasks;
    for (size_t i = 0; i < states.size(); ++i)
      tasks.push_back(task("a" + std::to_string(i), states[i], std::nullopt));
    return cli::run_exit_status(run_of("failed", tasks));
  };
  CHECK(status({"succeeded", "succeeded"}) == 0);
  CHECK(status({"succeeded", "failed"}) == 1);
  for (const char* state : {"timed_out", "cancelled", "rejected"})
    CHECK(status({state, "succeeded"}) == 1);
  CHECK(status({"succeeded", "skipped"}) == 4);
  CHECK(status({"lost", "succeeded"}) == 4);
  CHECK(status({"failed", "lost"}) == 4);  // 4 wins over 1
  CHECK(status({"skipped", "failed"}) == 4);
  CHECK(status({"running"}) == 4);
  CHECK(status({}) == 4);  // nothing ran
}

TEST_CASE("the summary of a run", "[cli][fleet]") {
  auto run = run_of(
      "stopped",
      {task("edge-1", "succeeded", 0, "2026-11-22T05:00:00.000Z", "2026-11-22T05:00:03.000Z"),
       task("edge-2", "failed", 3, "2026-11-22T05:00:00.000Z", "2026-11-22T05:00:00.500Z"),
       task("edge-3", "succeeded", 0, "2026-11-22T05:00:00.000Z", "2026-11-22T05:02:05.000Z"),
       task("edge-4", "succeeded", 0, "2026-11-22T05:00:00.000Z", "2026-11-22T05:00:01.000Z"),
       task("edge-5", "skipped", std::nullopt)});
  run.stop_reason = "max_errors 0 exceeded";
  run.tasks[4].note = "agent offline for 60 s";
  run.tasks[1].note = "bad \x1b[2J news";
  cli::RunTails tails;
  tails.by_task["t-edge-2"] = {{"deploying"}, {"error: disk full"}};
  CHECK(cli::run_summary_text(run, tails) ==
        "[tether] run r-1 stopped: max_errors 0 exceeded\n"
        "  3 succeeded, 1 failed, 1 skipped\n"
        "  slowest: edge-3 2m05s, edge-1 3.0s, edge-4 1.0s\n"
        "  edge-2 failed, exit 3 (bad \\e[2J news)\n"
        "    out| deploying\n"
        "    err| error: disk full\n"
        "  edge-5 skipped: agent offline for 60 s\n");
  CHECK_THAT(cli::run_summary_text(run, tails, 1),
             Catch::Contains("... and 1 more that did not succeed: tether run-status r-1"));
  CHECK(cli::duration_text(400) == "0.4s");
  CHECK(cli::duration_text(7'620'000) == "2h07m");
}

TEST_CASE("--json adds the last lines of the hosts that did not succeed", "[cli][fleet]") {
  auto run = run_of("failed", {task("edge-1", "succeeded", 0), task("edge-2", "failed", 1)});
  const std::string hub_json = R"({"id":"r-1","state":"failed","future_field":7,"tasks":[)"
                               R"({"agent":"edge-1","task_id":"t-edge-1","state":"succeeded"},)"
                               R"({"agent":"edge-2","task_id":"t-edge-2","state":"failed"}]})";
  cli::RunTails tails;
  tails.by_task["t-edge-2"] = {{"out \xff"}, {"err 1", "err 2"}};
  auto json = cli::run_json(hub_json, run, tails);
  REQUIRE(json.ok());
  auto document = protocol::parse_json_object(*json, "run");
  REQUIRE(document.ok());
  const auto& tasks = (*document)["tasks"];
  CHECK_FALSE(tasks[0].HasMember("last_lines"));
  REQUIRE(tasks[1]["last_lines"].IsArray());
  REQUIRE(tasks[1]["last_lines"].Size() == 3);
  CHECK(std::string(tasks[1]["last_lines"][0].GetString()) == "out ?");
  CHECK(std::string(tasks[1]["last_lines"][2].GetString()) == "err 2");
  CHECK((*document)["future_field"].GetInt() == 7);  // the hub's view, kept whole
}

TEST_CASE("fan-out options become the run request; bad ones are named", "[cli][fleet]") {
  auto request = cli::run_request_from(
      command_line({"--selector", "role==web", "--max-concurrency", "10%", "--max-errors", "2",
                    "--canary", "1", "--offline-timeout", "30", "--cancel-on-error",
                    "--lost-is-error", "--timeout", "60", "--", "uptime"}));
  REQUIRE(request.ok());
  CHECK(request->selector == "role=web");
  CHECK(request->max_concurrency == protocol::RunAmount{10, true});
  CHECK(request->max_errors == protocol::RunAmount{2, false});
  CHECK(request->canary == 1);
  CHECK(request->offline_timeout_s == 30);
  CHECK(request->cancel_on_error);
  CHECK(request->lost_is_error);
  CHECK(request->spec.timeout_s == 60);
  CHECK(request->spec.argv == std::vector<std::string>{"uptime"});
  auto named = cli::run_request_from(command_line({"--agents", "a,b.c", "--", "true"}));
  REQUIRE(named.ok());
  CHECK(named->agents == std::vector<std::string>{"a", "b.c"});
  CHECK_FALSE(named->max_errors);

  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--agents", "a,,b", "--", "x"}, "--agents: '' is not an agent name"},
      {{"--agents", "a,a", "--", "x"}, "--agents: 'a' is named twice"},
      {{"--selector", "", "--", "x"}, "--selector: empty"},
      {{"--selector", "a", "--agent", "b", "--", "x"}, "run: give --agent NAME, or --any SELECTOR"},
      {{"--selector", "a", "--max-errors", "150%", "--", "x"}, "--max-errors: a percentage"},
      {{"--selector", "a", "--max-concurrency", "0", "--", "x"}, "--max-concurrency: must be"},
      {{"--selector", "a", "--canary", "one", "--", "x"}, "--canary: 'one' is not a number"},
      {{"--selector", "a", "--max-attempts", "2", "--", "x"}, "--max-attempts goes with"},
      {{"--agent", "a", "--canary", "1", "--", "x"}, "--canary goes with --selector"},
      {{"--agent", "a", "--json", "--", "x"}, "--json goes with --selector"},
      {{"--selector", "a"}, "run: no command after --"},
  };
  for (const auto& [words, message] : bad) {
    auto refused = cli::run_request_from(command_line(words));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "usage");
    CHECK_THAT(refused.error().message, Catch::StartsWith(message));
  }
}

TEST_CASE("runs and run-status tables", "[cli][fleet]") {
  auto run = run_of("failed", {task("edge-1", "succeeded", 0, "2026-11-22T05:00:00.000Z",
                                    "2026-11-22T05:00:01.500Z"),
                               task("edge-2", "failed", 2)});
  run.command_json = R"({"argv":["echo","hi"]})";
  run.created_at = "2026-11-22T05:00:00.000Z";
  run.tasks[1].note = "exit 2";
  const std::string list = cli::run_list_text({run});
  CHECK_THAT(list, Catch::StartsWith("RUN "));
  CHECK_THAT(list, Catch::Contains("r-1") && Catch::Contains("role=web") &&
                       Catch::Contains("1 succeeded, 1 failed") &&
                       Catch::Contains("2026-11-22T05:00:00.000Z"));
  const std::string view = cli::run_view_text(run);
  CHECK_THAT(view, Catch::Contains("command   echo hi\n"));
  CHECK_THAT(view, Catch::Contains("selector  role=web\n"));
  CHECK_THAT(view, Catch::Contains("edge-1               succeeded  t-edge-1             0     "
                                   "0          0          1.5s\n"));
  CHECK_THAT(view, Catch::Contains("edge-2               failed     t-edge-2             2     "
                                   "0          0          -         exit 2\n"));
}

TEST_CASE("an event cut off by a dropped connection is discarded", "[cli][fleet]") {
  std::vector<cli::SseEvent> events;
  cli::SseParser parser([&](const cli::SseEvent& event) { events.push_back(event); });
  REQUIRE(parser.feed("id: 4\nevent: output\ndata: {}\n\nid: 5\nevent: out").ok());
  parser.discard_partial();
  REQUIRE(parser.feed(": tether events\n\nid: 5\nevent: status\ndata: {\"a\":1}\n\n").ok());
  REQUIRE(events.size() == 2);
  CHECK(events[1].id == "5");
  CHECK(events[1].type == "status");
  CHECK(parser.last_event_id() == "5");
}
