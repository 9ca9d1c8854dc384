// `tether-agent exec`: runs one command through the agent's runner and prints
// every report as one JSON object per line. A debugging tool, and the harness
// the tests use to see exactly what the agent would send.
#pragma once

#include <string>
#include <vector>

namespace tether::agent {

// `args` are the words after "exec". Returns the process exit status.
int exec_command(const std::vector<std::string>& args);

}  // namespace tether::agent
