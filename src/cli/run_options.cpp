#include "cli/run_options.hpp"

#include <charconv>
#include <set>

#include "cli/task_options.hpp"
#include "protocol/selector.hpp"
#include "protocol/task_spec.hpp"

namespace tether::cli {

namespace {

Error usage(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

// The options only a fan-out run takes (with a value, or a flag).
const std::vector<std::string>& fan_out_only() {
  static const std::vector<std::string> names = {
      "--max-concurrency", "--max-errors",    "--canary", "--offline-timeout",
      "--cancel-on-error", "--lost-is-error", "--json"};
  return names;
}

Result<void> read_targets(const CommandLine& line, protocol::RunRequest& request) {
  if (line.has("--selector")) {
    auto selector = protocol::Selector::parse(line.value("--selector"));
    if (!selector) {
      // The grammar's messages begin "selector: ": the option says it.
      std::string message = selector.error().message;
      if (message.rfind("selector: ", 0) == 0) message.erase(0, 10);
      return usage("--selector: " + message);
    }
    request.selector = selector->text();
    return {};
  }
  const std::string list = line.value("--agents");
  std::set<std::string> seen;
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    const std::string name =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!protocol::is_valid_id(name)) {
      return usage("--agents: '" + name +
                   "' is not an agent name (1 to 128 of A-Z a-z 0-9 . _ : -, separated by commas)");
    }
    if (!seen.insert(name).second) return usage("--agents: '" + name + "' is named twice");
    request.agents.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return {};
}

Result<uint64_t> read_count(const CommandLine& line, const char* flag, uint64_t fallback) {
  if (!line.has(flag)) return fallback;
  const std::string text = line.value(flag);
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return usage(std::string(flag) + ": '" + text + "' is not a number");
  }
  return value;
}

Result<protocol::RunAmount> read_amount(const CommandLine& line, const char* flag) {
  auto amount = protocol::parse_run_amount(line.value(flag), flag + 2);
  if (!amount) {
    // The protocol's message names the JSON field ("run.max_errors: ..."):
    // here it is the option.
    const std::string& message = amount.error().message;
    const size_t colon = message.find(": ");
    return usage(std::string(flag) + ": " +
                 (colon == std::string::npos ? message : message.substr(colon + 2)));
  }
  return *amount;
}

}  // namespace

const std::vector<OptionSpec>& run_options() {
  static const std::vector<OptionSpec> options = {{"--selector", "", true},
                                                  {"--agents", "", true},
                                                  {"--max-concurrency", "", true},
                                                  {"--max-errors", "", true},
                                                  {"--canary", "", true},
                                                  {"--offline-timeout", "", true},
                                                  {"--cancel-on-error", "", false},
                                                  {"--lost-is-error", "", false},
                                                  {"--json", "", false}};
  return options;
}

bool is_fan_out(const CommandLine& line) {
  return line.has("--selector") || line.has("--agents");
}

Result<void> check_run_form(const CommandLine& line) {
  int forms = 0;
  for (const char* form : {"--agent", "--any", "--selector", "--agents"})
    forms += line.has(form) ? 1 : 0;
  if (forms != 1) {
    return usage(
        "run: give --agent NAME, or --any SELECTOR for the first free agent whose labels "
        "match, or --selector SELECTOR or --agents A,B,C for a fan-out run (exactly one)");
  }
  if (is_fan_out(line)) {
    for (const char* single : {"--max-attempts", "--reject-if-busy"}) {
      if (line.has(single)) {
        return usage(std::string(single) + " goes with --agent or --any, not a fan-out run");
      }
    }
    return {};
  }
  for (const auto& name : fan_out_only()) {
    if (line.has(name)) return usage(name + " goes with --selector or --agents");
  }
  return {};
}

Result<protocol::RunRequest> run_request_from(const CommandLine& line) {
  TETHER_TRY(form, check_run_form(line));
  protocol::RunRequest request;
  TETHER_TRY(targets, read_targets(line, request));
  TETHER_TRY(spec, task_spec_from(line));
  request.spec = std::move(*spec);
  if (line.has("--max-concurrency")) {
    TETHER_TRY(concurrency, read_amount(line, "--max-concurrency"));
    if (concurrency->value == 0) return usage("--max-concurrency: must be at least 1");
    request.max_concurrency = *concurrency;
  }
  if (line.has("--max-errors")) {
    TETHER_TRY(errors, read_amount(line, "--max-errors"));
    request.max_errors = *errors;
  }
  TETHER_TRY(canary, read_count(line, "--canary", 0));
  request.canary = *canary;
  TETHER_TRY(offline, read_count(line, "--offline-timeout", request.offline_timeout_s));
  request.offline_timeout_s = *offline;
  request.cancel_on_error = line.has("--cancel-on-error");
  request.lost_is_error = line.has("--lost-is-error");
  return request;
}

}  // namespace tether::cli
