// What each `tether` command accepts (options besides the connection
// options, which every command takes), and the usage text (docs/cli.md).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cli/command_line.hpp"

namespace tether::cli {

// The usage text `tether --help` prints and a usage error follows with.
extern const char* const kUsage;

// --hub-url, --token-file, --ca-file: before the command or after it.
const std::vector<OptionSpec>& connection_options();

// Command name -> its options, connection options included.
const std::map<std::string, std::vector<OptionSpec>>& command_options();

}  // namespace tether::cli
