// The values of `tether run --secret` (docs/cli.md). Each option names a
// secret and where its value is, never the value itself, so that no value
// is in the CLI's argv (`ps`, /proc/PID/cmdline, shell history):
//
//   --secret NAME        the value of NAME in the CLI's own environment
//   --secret NAME=@FILE  the bytes of FILE (a pipe works too: `=@<(pass x)`),
//                        less one trailing newline ("\n"), which editors
//                        and `echo` add; a value that must end in a newline
//                        is written with two
//   --secret NAME=VALUE  refused: the value would be in argv
//
// Names follow the env name rule ([A-Za-z_][A-Za-z0-9_]*, task_spec.hpp).
// Values must be UTF-8 without NUL (they travel as JSON strings and become
// environment variables) and within the task spec's size limits.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace tether::cli {

// A variable of the CLI's environment, if it is set.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string& name)>;
// The process's own environment (getenv).
std::optional<std::string> process_environment(const std::string& name);

// Name to value for `options`, the words given to --secret in order.
// Errors (code "usage") name the option ("--secret DB_PASSWORD") and why,
// and never quote a value or a file's content.
Result<std::map<std::string, std::string>> read_secret_options(
    const std::vector<std::string>& options, const EnvironmentLookup& environment);

}  // namespace tether::cli
