// The options of `tether run` for a fan-out run (docs/cli.md, Fleets):
// which agents (--selector SELECTOR or --agents a,b,c), and how the hub
// releases their tasks (--max-concurrency N|N%, --max-errors N|N%,
// --canary N, --offline-timeout S, --cancel-on-error, --lost-is-error).
// The task itself is described by the options of task_options.hpp.
#pragma once

#include <vector>

#include "cli/command_line.hpp"
#include "core/result.hpp"
#include "protocol/run_api.hpp"

namespace tether::cli {

// The options above, as parse_command_line takes them.
const std::vector<OptionSpec>& run_options();

// True when the line asks for a fan-out run (--selector or --agents).
bool is_fan_out(const CommandLine& line);

// The run to POST (/api/v1/runs), task options included. Errors (code
// "usage") name the option and what is wrong ("--max-errors: expected a
// count or a percentage (\"10%\")", "--agents: 'a b' is not an agent
// name", "--canary goes with --selector or --agents"); the hub checks the
// rest and names the field. Nothing is asked of the hub here.
Result<protocol::RunRequest> run_request_from(const CommandLine& line);

// Error (code "usage") if a fan-out option is given without --selector or
// --agents, or a single-task option (--max-attempts, --reject-if-busy)
// with them; names the option.
Result<void> check_run_form(const CommandLine& line);

}  // namespace tether::cli
