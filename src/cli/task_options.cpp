#include "cli/task_options.hpp"

#include <algorithm>
#include <charconv>

#include "cli/secret_options.hpp"
#include "protocol/task_limits.hpp"

namespace tether::cli {

namespace {

Error usage(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

// A count after `flag`, if given; false if it is not one.
bool read_count(const CommandLine& line, const char* flag, uint64_t& out) {
  if (!line.has(flag)) return true;
  const std::string text = line.value(flag);
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

Result<void> read_variables(const CommandLine& line, protocol::TaskSpec& spec) {
  if (line.values.count("--env")) {
    for (const auto& value : line.values.at("--env")) {
      const auto equals = value.find('=');
      if (equals == std::string::npos || equals == 0) return usage("--env: expected NAME=VALUE");
      spec.env[value.substr(0, equals)] = value.substr(equals + 1);
    }
  }
  if (line.values.count("--secret")) {
    auto secrets = read_secret_options(line.values.at("--secret"), process_environment);
    if (!secrets) return usage(secrets.error().message);
    spec.secrets = std::move(*secrets);
    for (const auto& [name, value] : spec.secrets) {
      if (spec.env.count(name)) {
        return usage("--secret " + name + ": also given with --env; it is one or the other");
      }
    }
  }
  return {};
}

}  // namespace

Result<protocol::TaskSpec> task_spec_from(const CommandLine& line) {
  protocol::TaskSpec spec;
  spec.target = line.value("--target");
  spec.cwd = line.value("--cwd");
  if (!read_count(line, "--timeout", spec.timeout_s)) {
    return usage("--timeout: '" + line.value("--timeout") + "' is not a number");
  }
  for (const char* limit : {"memory_max", "cpu_max", "pids_max"}) {
    std::string flag = std::string("--") + limit;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (!line.has(flag)) continue;
    if (auto set = protocol::set_limit(limit, line.value(flag), spec.limits); !set) {
      return usage(flag + ": " + set.error().message);
    }
  }
  TETHER_TRY(variables, read_variables(line, spec));
  if (!line.operands.empty()) {
    return usage("run: give the command after -- (got '" + line.operands.front() + "')");
  }
  if (line.after_dashes.empty()) return usage("run: no command after --");
  if (line.has("--shell")) {
    if (line.after_dashes.size() != 1) return usage("--shell takes one script argument");
    spec.shell = line.after_dashes.front();
  } else {
    spec.argv = line.after_dashes;
  }
  return spec;
}

}  // namespace tether::cli
