// The options of `tether run` that describe the task itself, whoever runs it
// (docs/cli.md): --target, --cwd, --timeout, --memory-max, --cpu-max,
// --pids-max, --env (repeatable), --secret (repeatable, secret_options.hpp),
// --shell, and the command after `--`. Shared by every form of `run`.
#pragma once

#include "cli/command_line.hpp"
#include "core/result.hpp"
#include "protocol/task_spec.hpp"

namespace tether::cli {

// The task's fields (no task or attempt id). Errors (code "usage") name the
// option and what is wrong ("--timeout: 'soon' is not a number"); the hub
// checks the rest (ranges, sizes) and names the field.
Result<protocol::TaskSpec> task_spec_from(const CommandLine& line);

}  // namespace tether::cli
