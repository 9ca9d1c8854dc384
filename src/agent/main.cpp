// tether-agent: runs commands for a Tether control plane.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "agent/exec_command.hpp"

namespace {

constexpr const char* kUsage =
    "usage: tether-agent COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
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

  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::printf("tether-agent %s\n", TETHER_VERSION);
    return 0;
  }
  if (args[0] == "exec") {
    return tether::agent::exec_command(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::fprintf(stderr, "tether-agent: unknown command '%s'\n\n%s", args[0].c_str(), kUsage);
  return 2;
}
