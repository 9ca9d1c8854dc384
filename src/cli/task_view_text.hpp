// What `tether status TASK` prints about a task (docs/cli.md): one
// "label     value" line per fact the hub's answer holds, the final's when
// there is one. Every word from the hub or the agent goes through
// printable(): never raw on the operator's terminal.
#pragma once

#include <string>

#include "protocol/operator_api.hpp"

namespace tether::cli {

// The lines, each ending in a newline.
std::string task_view_text(const protocol::DecodedTask& decoded);

}  // namespace tether::cli
