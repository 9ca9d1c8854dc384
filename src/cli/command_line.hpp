// CommandLine: the words of one CLI command, options anywhere before "--"
// (`tether logs -f ID` and `tether logs ID -f` mean the same), in the manner
// of GNU getopt_long with argument permutation.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace tether::cli {

struct OptionSpec {
  std::string name;        // "--follow"
  std::string short_name;  // "-f", or empty
  bool takes_value = false;
};

struct CommandLine {
  std::vector<std::string> operands;
  // Every value given, in order, by long name ("--env" may repeat).
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> after_dashes;  // words after "--"
  bool has(const std::string& name) const { return values.count(name) != 0; }
  // The last value given for `name`, or `fallback`.
  std::string value(const std::string& name, const std::string& fallback = {}) const;
};

// Errors (code "usage") name the word: an unknown option, a missing value.
// "--name=value" is accepted for options that take a value.
Result<CommandLine> parse_command_line(const std::vector<std::string>& words,
                                       const std::vector<OptionSpec>& options);

}  // namespace tether::cli
