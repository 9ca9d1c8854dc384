// The live board of `tether run --selector` on a terminal (docs/cli.md,
// Fleets): the real CLI against a ScriptedRunHub, inside a pseudo-terminal
// made by script(1) (util-linux; Essential in Debian), which records every
// byte that reached the terminal and passes on the keys we write to it.
// A shell in the terminal prints the terminal's mode (stty -g) before and
// after the CLI, so a mode not given back is seen.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>

#include "cli/terminal_text.hpp"

#include "core/co_group.hpp"
#include "core/process.hpp"
#include "fleet_script.hpp"
#include "harness.hpp"
#include "scripted_run_hub.hpp"

using namespace tether;
using namespace tether::test;
using protocol::AttemptStatus;
using protocol::StreamName;

namespace {

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// `tether ARGS` in a 30 x 100 terminal; our control socket is script's
// stdin (keys). The shell outlives a Ctrl-C (its trap) to print the rest.
std::unique_ptr<core::Process> start_on_terminal(FleetWorld& world,
                                                 const std::vector<std::string>& args) {
  std::string command = quoted(cli_binary());
  for (const auto& arg : args)
    command += " " + quoted(arg);
  const std::string inner =
      "trap : INT; stty rows 30 cols 100; echo \"tty=$(tty)\"; echo \"mode-before=$(stty -g)\"; " +
      command + "; echo \"status=$?\"; echo \"mode-after=$(stty -g)\"";
  core::SpawnOptions options;
  options.argv = {"/bin/bash", "-c", "exec script -qfec " + quoted(inner) + " /dev/null <&3 3<&-"};
  options.environment = world.environment();
  options.environment.push_back("TERM=xterm");
  options.environment.push_back("PATH=/usr/bin:/bin");
  options.control_socket = true;
  auto process = core::Process::spawn(world.loop, options);
  REQUIRE(process.ok());
  return std::move(*process);
}

// Reads what reached the terminal until `text` is in it.
core::Co<void> read_until(core::Process& process, std::string& screen, const std::string& text) {
  while (screen.find(text) == std::string::npos) {
    auto chunk = co_await process.stdout_reader().read();
    INFO("waiting for: " << text << "\nscreen so far: " << screen);
    REQUIRE(chunk.ok());
    REQUIRE_FALSE(chunk->end_of_stream);
    screen.append(chunk->bytes);
  }
}

// The value printed after `name=` on a line of its own.
std::string printed(const std::string& screen, const std::string& name) {
  const size_t at = screen.find(name + "=");
  if (at == std::string::npos) return "(not printed)";
  const size_t begin = at + name.size() + 1;
  return screen.substr(begin, screen.find('\r', begin) - begin);
}

bool shows(const std::string& screen, const std::string& pattern) {
  return std::regex_search(screen, std::regex(pattern));
}

core::Co<void> finish(core::Process& process, core::CoGroup& readers, CliRun& run) {
  co_await finish_cli(process, readers, run);
}

const std::vector<Host> kBoardHosts = {
    {"edge-1", "t-1", "succeeded", 0, "alpha\n", "", 1000},
    {"edge-2", "t-2", "failed", 3, "\x1b]0;pwned\x07\x1b[2Jdanger\n", "boom\n", 2000},
    {"edge-3", "t-3", "succeeded", 0, "", "", 500},
};

}  // namespace

TEST_CASE("on a terminal, tether run --selector shows a live board; j follows the next host",
          "[cli][fleet][board]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    hub.created_json = view_json(kBoardHosts, "running", false);
    hub.final_json = view_json(kBoardHosts, "failed", true);
    hub.outputs = {{"t-2/stdout", kBoardHosts[1].out}, {"t-2/stderr", kBoardHosts[1].err}};
    EventScript script;
    script.run("running");
    script.status("t-1", "running");
    script.status("t-2", "running");
    script.output("t-1", StreamName::kStdout, "alpha\n");
    script.output("t-2", StreamName::kStdout, kBoardHosts[1].out);
    script.output("t-2", StreamName::kStderr, "boom\n");
    const size_t shown_first = script.events.size();
    script.final("t-1", AttemptStatus::kSucceeded, 0, "alpha\n", "");
    script.status("t-1", "succeeded");
    script.final("t-2", AttemptStatus::kFailed, 3, kBoardHosts[1].out, "boom\n");
    script.status("t-2", "failed");
    script.final("t-3", AttemptStatus::kSucceeded, 0, "", "");
    script.status("t-3", "succeeded");
    script.run("failed");
    hub.events.assign(script.events.begin(), script.events.begin() + shown_first);
    hub.hold_open = true;

    const std::vector<std::string> args = {"run", "--selector", "role=web", "--", "deploy"};
    auto cli = start_on_terminal(world, args);
    CliRun run;
    core::CoGroup readers;
    readers.spawn(read_all(cli->stderr_reader(), run.err));
    // Following edge-1, the first host that wrote.
    co_await read_until(*cli, run.out, "-- edge-1 -- keys:");
    co_await read_until(*cli, run.out, "out| alpha");
    CHECK(cli->control_write("j"));
    co_await read_until(*cli, run.out, "-- edge-2 -- keys:");
    co_await read_until(*cli, run.out, "out| \\e]0;pwned\\x07\\e[2Jdanger");
    co_await read_until(*cli, run.out, "err| boom");
    // The window shrinks (SIGWINCH): the board is drawn again for 60 columns.
    const int terminal = ::open(printed(run.out, "tty").c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(terminal >= 0);
    const winsize smaller{20, 60, 0, 0};
    CHECK(::ioctl(terminal, TIOCSWINSZ, &smaller) == 0);
    ::close(terminal);
    co_await read_until(
        *cli, run.out,
        "\x1b[2J\x1b[1;1H\x1b[2Krun r-1 running: 1 queued, 2 running\x1b[2;1H\x1b[2K" +
            std::string("  AGENT   STATE          STDOUT      STDERR  EXIT"));
    co_await read_until(*cli, run.out,
                        cli::clip_to_width("-- edge-2 -- keys: ↑↓ j k host · Tab n next with "
                                           "output · q stop following",
                                           60));
    for (size_t i = shown_first; i < script.events.size(); ++i)
      hub.send(script.events[i]);
    hub.end();
    readers.spawn(read_all(cli->stdout_reader(), run.out));
    co_await finish(*cli, readers, run);
    const std::string& screen = run.out;
    INFO("terminal: " << screen);
    CHECK(printed(screen, "status") == "1");  // edge-2 failed
    // One row per agent, with its final state, bytes and exit code.
    CHECK(shows(screen, "edge-1 +succeeded +6 B +0 B +0"));
    CHECK(shows(screen,
                "> edge-2 +failed +" + std::to_string(kBoardHosts[1].out.size()) + " B +5 B +3"));
    CHECK(shows(screen, "edge-3 +succeeded +0 B +0 B +0"));
    CHECK(shows(screen, "run r-1 failed: 2 succeeded, 1 failed"));
    // The task's escape sequences reached the terminal only made visible.
    CHECK(screen.find("\x1b]0;pwned") == std::string::npos);
    CHECK(screen.find("\x1b[2Jdanger") == std::string::npos);
    // No prefixed lines: the board shows the output instead.
    CHECK(screen.find("edge-1: alpha") == std::string::npos);
    // The board is gone (the alternate screen left), then the summary.
    const size_t board_closed = screen.rfind("\x1b[?1049l");
    const size_t summary = screen.find("[tether] run r-1 failed\r\n");
    REQUIRE(board_closed != std::string::npos);
    REQUIRE(summary != std::string::npos);
    CHECK(board_closed < summary);
    CHECK(screen.find("  edge-2 failed, exit 3\r\n", summary) != std::string::npos);
    // The terminal's mode is as it was.
    CHECK(printed(screen, "mode-before").size() > 20);
    CHECK(printed(screen, "mode-before") == printed(screen, "mode-after"));
  });
}

TEST_CASE("on the board, q stops following without cancelling; Ctrl-C cancels as without it",
          "[cli][fleet][board]") {
  FleetWorld world;
  world.run([&]() -> core::Co<void> {
    auto& hub = *world.hub;
    for (const bool press_q : {true, false}) {
      const std::vector<Host> hosts = {
          {"edge-1", "t-1", "cancelled", std::nullopt, "tick\n", "", 0, "cancelled"},
          {"edge-2", "t-2", "skipped", std::nullopt, "", "", 0, "the run was cancelled"}};
      hub.created_json = view_json(hosts, "running", false);
      hub.final_json = view_json(hosts, "cancelled", true);
      hub.outputs = {{"t-1/stdout", "tick\n"}};
      EventScript script;
      script.run("running");
      script.status("t-1", "running");
      script.output("t-1", StreamName::kStdout, "tick\n");
      hub.events = script.events;
      hub.hold_open = true;
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
      const std::vector<std::string> args = {
          "run", "--selector", "role=web", "--cancel-on-interrupt", "--", "sleep", "600"};
      auto cli = start_on_terminal(world, args);
      CliRun run;
      core::CoGroup readers;
      readers.spawn(read_all(cli->stderr_reader(), run.err));
      co_await read_until(*cli, run.out, "out| tick");
      CHECK(cli->control_write(press_q ? "q" : "\x03"));  // Ctrl-C: SIGINT from the terminal
      readers.spawn(read_all(cli->stdout_reader(), run.out));
      co_await finish(*cli, readers, run);
      const std::string& screen = run.out;
      INFO((press_q ? "q" : "Ctrl-C") << "; terminal: " << screen);
      CHECK(printed(screen, "status") == "130");
      const auto cancels = hub.requests_to("POST", "/api/v1/runs/r-1/cancel");
      if (press_q) {
        CHECK(cancels.empty());
        CHECK_THAT(screen, Catch::Contains("stopped following run r-1; it keeps running"));
        hub.end();  // the stream the CLI left
      } else {
        CHECK(cancels.size() == 1);
        CHECK_THAT(screen, Catch::Contains("tether: cancelling run r-1"));  // on the board
        CHECK_THAT(screen, Catch::Contains("[tether] run r-1 cancelled\r\n"
                                           "  1 cancelled, 1 skipped\r\n"));
      }
      CHECK(printed(screen, "mode-before") == printed(screen, "mode-after"));
      hub.hold_open = false;
      hub.on_cancel = nullptr;
      hub.requests_clear();
    }
  });
}
