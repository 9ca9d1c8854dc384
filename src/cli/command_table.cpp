#include "cli/command_table.hpp"

#include "cli/audit_command.hpp"
#include "cli/run_options.hpp"

namespace tether::cli {

const char* const kUsage =
    "usage: tether [connection options] COMMAND ...\n"
    "\n"
    "fleets:\n"
    "  run (--selector SELECTOR | --agents A,B,C) [task options as below]\n"
    "      [--max-concurrency N|N%] [--max-errors N|N%] [--canary N]\n"
    "      [--offline-timeout S] [--cancel-on-error] [--lost-is-error] [--json]\n"
    "      [--cancel-on-interrupt] -- COMMAND [ARGS...]\n"
    "                                one task per agent; each host's lines prefixed with\n"
    "                                its name, then a summary (--json: one object)\n"
    "  runs [--limit N] [--json]     fan-out runs, newest first\n"
    "  run-status RUN [--json]       a run and one row per agent\n"
    "  logs --run RUN --agent NAME [-f]\n"
    "                                the output of that agent's task in the run\n"
    "\n"
    "single agents:\n"
    "  run (--agent NAME | --any SELECTOR) [--target T] [--timeout S] [--cwd DIR]\n"
    "      [--env NAME=VALUE]...\n"
    "      [--secret NAME | --secret NAME=@FILE]... [--max-attempts N] [--reject-if-busy]\n"
    "      [--memory-max BYTES[K|M|G]] [--cpu-max CPUS] [--pids-max N]\n"
    "      [--cancel-on-interrupt] [--shell]\n"
    "      -- COMMAND [ARGS...]      submit a task, stream its output, exit with its status\n"
    "  logs TASK [-f|--follow]       print a task's output (-f: follow until it ends)\n"
    "  status TASK [--json]          show a task\n"
    "  cancel TASK [--reason TEXT]   cancel a task\n"
    "  tasks [--state S] [--limit N] [--json]\n"
    "  agents [--selector SELECTOR] [--json]\n"
    "  remove-agent NAME             remove an agent: its token stops working, its tasks end\n"
    "  audit [--actor N] [--action A] [--target T] [--since TIME] [--until TIME]\n"
    "      [--after ID] [--limit N] [--json]\n"
    "                                the hub's audit trail, oldest first (admin tokens only);\n"
    "                                TIME: UTC (2026-11-22T05:12:00Z) or an age (30m, 2h, 7d)\n"
    "\n"
    "connection options (or the environment):\n"
    "  --hub-url URL      TETHER_HUB_URL     e.g. https://hub.example:7070\n"
    "  --token-file FILE  TETHER_TOKEN_FILE  a file (mode 0600) holding an operator token\n"
    "  --ca-file FILE     TETHER_CA_FILE     extra CA certificates (PEM) for https\n"
    "\n"
    "Options may come before or after the task; `--` ends them.\n"
    "\n"
    "exit status of a fan-out run: 0 every task succeeded; 1 every agent's task ran and\n"
    "some did not succeed; 4 some agents' tasks did not run or were lost (skipped, lost);\n"
    "130 interrupted; 141 our stdout closed; 2 bad usage; 3 hub unreachable or refused.\n"
    "exit status of run and logs -f: the task's exit code; 128+N if signal N ended it;\n"
    "124 timed out, 125 cancelled, 69 rejected, 75 lost, 127 could not start;\n"
    "130 if you interrupted following; 141 (SIGPIPE) if our stdout closed;\n"
    "2 bad usage; 3 hub unreachable or refused.\n";

const std::vector<OptionSpec>& connection_options() {
  static const std::vector<OptionSpec> options = {
      {"--hub-url", "", true}, {"--token-file", "", true}, {"--ca-file", "", true}};
  return options;
}

namespace {

std::vector<OptionSpec> with(std::vector<OptionSpec> options, const std::vector<OptionSpec>& more) {
  options.insert(options.end(), more.begin(), more.end());
  return options;
}

std::vector<OptionSpec> with_connection(std::vector<OptionSpec> options) {
  return with(std::move(options), connection_options());
}

}  // namespace

const std::map<std::string, std::vector<OptionSpec>>& command_options() {
  static const std::map<std::string, std::vector<OptionSpec>> table = {
      {"run", with_connection(with({{"--agent", "", true},
                                    {"--any", "", true},
                                    {"--target", "", true},
                                    {"--timeout", "", true},
                                    {"--cwd", "", true},
                                    {"--env", "", true},
                                    {"--secret", "", true},
                                    {"--max-attempts", "", true},
                                    {"--memory-max", "", true},
                                    {"--cpu-max", "", true},
                                    {"--pids-max", "", true},
                                    {"--reject-if-busy", "", false},
                                    {"--cancel-on-interrupt", "", false},
                                    {"--shell", "", false}},
                                   run_options()))},
      {"logs",
       with_connection({{"--follow", "-f", false}, {"--run", "", true}, {"--agent", "", true}})},
      {"status", with_connection({{"--json", "", false}})},
      {"cancel", with_connection({{"--reason", "", true}})},
      {"tasks",
       with_connection({{"--state", "", true}, {"--limit", "", true}, {"--json", "", false}})},
      {"agents", with_connection({{"--json", "", false}, {"--selector", "", true}})},
      {"remove-agent", with_connection({})},
      {"audit", with_connection(audit_options())},
      {"runs", with_connection({{"--limit", "", true}, {"--json", "", false}})},
      {"run-status", with_connection({{"--json", "", false}})},
  };
  return table;
}

}  // namespace tether::cli
