// The fleet commands of `tether` (docs/cli.md, Fleets):
//
//   run (--selector SELECTOR | --agents A,B,C) [task options] [run options]
//       [--json] [--cancel-on-interrupt] -- CMD ...
//   runs [--limit N] [--json]
//   run-status RUN [--json]
//   logs --run RUN --agent NAME [-f]      (the lookup; main.cpp follows)
//
// Each returns the exit status, or an error: code "usage" for bad usage
// (it names the option; nothing was asked of the hub), anything else for
// a hub that could not be reached, refused, or answered something
// unreadable. main.cpp turns those into 2 and 3.
#pragma once

#include <string>

#include "cli/command_line.hpp"
#include "cli/hub_client.hpp"
#include "core/result.hpp"

namespace tether::cli {

// Submits the run, shows its hosts' output line by line prefixed with
// their names (or nothing, with --json) until it ends, then the summary on
// stderr (or with --json the run as one JSON object on stdout). The status
// follows run_exit_status.hpp; 130 if interrupted (after cancelling the
// run and waiting for its end, with --cancel-on-interrupt); ends by
// SIGPIPE if our stdout closed.
Result<int> run_fan_out(HubClient& client, const CommandLine& line);

// `tether runs`: the runs, newest first.
Result<int> list_runs(HubClient& client, const CommandLine& line);

// `tether run-status RUN`: the run and one row per agent.
Result<int> show_run(HubClient& client, const CommandLine& line);

// The id of the task agent `agent` has in run `run_id`. Errors: the hub's
// (an unknown run: 404), or code "not_found" naming the run's agents.
Result<std::string> run_task_of(HubClient& client, const std::string& run_id,
                                const std::string& agent);

}  // namespace tether::cli
