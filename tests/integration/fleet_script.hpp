// A fan-out run scripted for the real `tether` CLI: a ScriptedRunHub on a
// loop of its own (FleetWorld), the run's events as the hub would store
// them (EventScript), and the hosts a test plays (Host, set_up).
// Used by cli_fleet_test.cpp (lines without a terminal) and
// cli_board_test.cpp (the live board on a pseudo-terminal).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/co.hpp"
#include "harness.hpp"
#include "protocol/attempt_report.hpp"
#include "scripted_run_hub.hpp"

namespace tether::test {

struct FleetWorld {
  core::Loop loop;
  TempDir dir;
  std::string token_file = dir.write_secret("operator.token", "tto_scripted_operator");
  std::unique_ptr<ScriptedRunHub> hub;

  // TETHER_HUB_URL and TETHER_TOKEN_FILE for the CLI.
  std::vector<std::string> environment() const;
  // Runs `body` with a fresh hub, on the loop, to its end.
  void run(const std::function<core::Co<void>()>& body);
  core::Co<CliRun> cli(std::vector<std::string> args);
};

// A run's events as the hub would store them: ids from 100 up; tasks
// "t-..." have one attempt each ("t-...-a1"); the run is "r-1".
struct EventScript {
  std::vector<ScriptedEvent> events;
  std::map<std::pair<std::string, protocol::StreamName>, uint64_t> offsets, seqs;

  void add(std::string type, std::string data);
  void status(const std::string& task, const std::string& state);
  void output(const std::string& task, protocol::StreamName stream, const std::string& bytes);
  void final(const std::string& task, protocol::AttemptStatus status, std::optional<int64_t> exit,
             const std::string& out, const std::string& err);
  void run(const std::string& state, const std::string& note = "");
};

// One host's part: its task, what it writes, how it ends.
struct Host {
  Host(std::string agent, std::string task, std::string state, std::optional<int64_t> exit_code,
       std::string out, std::string err, int64_t duration_ms = 0, std::string note = "");
  std::string agent, task, state;
  std::optional<int64_t> exit_code;
  std::string out, err;
  int64_t duration_ms = 0;
  std::string note;
};

// The run's view (run "r-1", selector role=web); `ended` adds exit codes,
// bytes, times and notes.
std::string view_json(const std::vector<Host>& hosts, const std::string& state, bool ended);

// Every host's output cut in pieces of 3, 7, 1 and 11 bytes, interleaved
// round-robin over hosts and streams, then each host's final and status.
EventScript script_of(const std::vector<Host>& hosts, const std::string& run_state);

// The hub plays the whole run: its submission, events, end and stored output.
void set_up(ScriptedRunHub& hub, const std::vector<Host>& hosts, const std::string& run_state);

}  // namespace tether::test
