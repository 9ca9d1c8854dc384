// What `tether runs` and `tether run-status RUN` print (docs/cli.md,
// Fleets). Every word from the hub or an agent goes through printable().
#pragma once

#include <string>
#include <vector>

#include "protocol/run_api.hpp"

namespace tether::cli {

// `tether runs`: a header and one row per run (id, state, selector or
// agents, counts, created), each line ending in a newline.
std::string run_list_text(const std::vector<protocol::RunView>& runs);

// `tether run-status RUN`: the run's facts, then one row per agent
// (agent, state, exit code, stdout and stderr bytes, duration, note).
std::string run_view_text(const protocol::RunView& run);

// The command as one line: the argv joined with spaces, or the shell
// script, from the view's {"argv":[...]} or {"shell":"..."}.
std::string run_command_text(const protocol::RunView& run);

}  // namespace tether::cli
