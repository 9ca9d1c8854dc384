// tether-agent: runs commands for a Tether control plane.
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "agent/agent_daemon.hpp"
#include "agent/exec_command.hpp"
#include "agent/register_command.hpp"
#include "agent/status_command.hpp"
#include "core/crash_report.hpp"
#include "core/run.hpp"

namespace {

constexpr const char* kUsage =
    "usage: tether-agent COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  register --hub-url URL --registration-token-file FILE [--name NAME] [...]\n"
    "                                    join a hub: get this host's token, set agent.conf\n"
    "  run [--config FILE] [--KEY VALUE]... run the agent (see 'tether-agent run --help')\n"
    "  status [--config FILE] [--json]   show the running agent and its outbox\n"
    "  exec [options] -- CMD [ARGS...]   run one command locally and print its frames as JSON\n"
    "  --version                         print the version\n"
    "  --help                            print this help\n"
    "\n"
    "Run 'tether-agent exec --help' for the options of exec.\n";

}  // namespace

int main(int argc, char** argv) {
  // A peer that hangs up must surface as EPIPE on the write, not kill the agent.
  // Children do not inherit this: libuv resets signal dispositions in them.
  ::signal(SIGPIPE, SIG_IGN);
  // glibc gives memory back to the kernel whenever 128 KiB sit free at the
  // top of the heap; SQLite's per-statement buffers cross that line on every
  // commit, so each commit cost a brk() and a TLB flush (a third of the
  // agent's time with 50 chatty tasks, by perf). Keep up to 4 MiB instead.
  ::mallopt(M_TRIM_THRESHOLD, 4 << 20);
  ::mallopt(M_TOP_PAD, 1 << 20);

  tether::core::install_crash_report("tether-agent");
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::printf("tether-agent %s\n", TETHER_VERSION);
    return 0;
  }
  if (args[0] == "run") {
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
      std::printf(
          "usage: tether-agent run [--config FILE] [--KEY VALUE]...\n\n"
          "Keys (in the file as `key = value`, or as --key-with-dashes VALUE):\n%s\n"
          "The token file may also be given as TETHER_AGENT_TOKEN_FILE. See docs/agent.md.\n",
          tether::agent::config_help().c_str());
      return 0;
    }
    auto config = tether::agent::load_agent_config(rest);
    if (!config) {
      std::fprintf(stderr, "tether-agent: %s\n", config.error().message.c_str());
      return 2;
    }
    tether::core::set_log_level(config->log_level);
    try {
      tether::core::Loop loop;
      tether::agent::AgentDaemon daemon(loop, std::move(*config));
      return tether::core::run_to_completion(loop, daemon.run());
    } catch (const SQLite::Exception& e) {
      std::fprintf(stderr, "tether-agent: outbox database error: %s\n", e.what());
      return 1;
    }
  }
  if (args[0] == "register") {
    return tether::agent::register_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "status") {
    return tether::agent::status_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (args[0] == "exec") {
    return tether::agent::exec_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::fprintf(stderr, "tether-agent: unknown command '%s'\n\n%s", args[0].c_str(), kUsage);
  return 2;
}
