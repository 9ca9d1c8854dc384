#include "cli/fleet_commands.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <limits>
#include <memory>

#include "cli/interrupt_watcher.hpp"
#include "cli/live_board.hpp"
#include "cli/printable.hpp"
#include "cli/run_exit_status.hpp"
#include "cli/run_follower.hpp"
#include "cli/run_options.hpp"
#include "cli/run_summary.hpp"
#include "cli/run_view_text.hpp"
#include "cli/terminal_screen.hpp"
#include "core/url.hpp"

namespace tether::cli {

namespace {

Error usage(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

std::string run_path(const std::string& run_id) {
  return "/api/v1/runs/" + core::url_encode(run_id);
}

// Whoever read our stdout has gone (`| head -1`): say how to come back, and
// end as a program killed by SIGPIPE would.
[[noreturn]] void end_by_sigpipe(const std::string& run_id) {
  std::fprintf(stderr,
               "tether: stdout closed; stopped following run %s, which keeps running. "
               "See it with: tether run-status %s\n",
               printable(run_id).c_str(), printable(run_id).c_str());
  std::fflush(stderr);
  ::signal(SIGPIPE, SIG_DFL);
  ::raise(SIGPIPE);
  _exit(128 + SIGPIPE);
}

// The run as it ended, the last lines of the hosts that did not succeed,
// and the summary (or --json object).
Result<int> report_end(HubClient& client, const std::string& run_id, bool as_json,
                       bool interrupted) {
  TETHER_TRY(reply, client.get(run_path(run_id)));
  TETHER_TRY(view, protocol::decode_run_view(reply->body));
  const RunTails tails =
      fetch_tails(client, *view, as_json ? std::numeric_limits<size_t>::max() : kSummaryMaxHosts);
  if (as_json) {
    TETHER_TRY(json, run_json(reply->body, *view, tails));
    std::printf("%s\n", printable_json(*json).c_str());
    std::fflush(stdout);
  } else {
    std::fputs(run_summary_text(*view, tails).c_str(), stderr);
  }
  return interrupted ? kExitInterrupted : run_exit_status(*view);
}

// Tells on the board (while it is up) or on stderr.
void tell(LiveBoard* board, const std::string& text) {
  if (board) {
    board->update([&](RunBoard& shown) { shown.set_notice(text); });
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

Result<int> follow_run(HubClient& client, const protocol::RunView& run, bool as_json,
                       bool cancel_on_interrupt) {
  InterruptWatcher watcher;
  // On a terminal, the live board instead of prefixed lines. Declared after
  // the watcher: gone (the terminal given back) before it, on every path.
  std::unique_ptr<LiveBoard> board;
  if (!as_json && TerminalScreen::usable()) board = std::make_unique<LiveBoard>(run, watcher);
  RunFollower follower(client, run, !as_json, ::isatty(2) != 0, board.get());
  TETHER_TRY(outcome, follower.run(watcher.interrupted(), watcher.fresh_control()));
  const bool interrupted = outcome->interrupted;
  // "q" on the board stops following without cancelling.
  const bool quit = board && board->quit_requested();
  if (interrupted && cancel_on_interrupt && !quit) {
    tell(board.get(),
         "tether: cancelling run " + printable(run.id) + " (interrupt again to stop waiting)");
    TETHER_TRY(cancelled, client.post(run_path(run.id) + "/cancel",
                                      R"({"reason":"interrupted from tether run"})"));
    watcher.reset();
    TETHER_TRY(again, follower.run(watcher.interrupted(), watcher.fresh_control()));
    outcome = std::move(again);
  }
  board.reset();  // the terminal back before anything more is printed
  follower.finish_output();
  if (outcome->stdout_closed) end_by_sigpipe(run.id);
  if (outcome->interrupted) {
    std::fprintf(stderr,
                 "tether: stopped following run %s; it keeps running. See it with: "
                 "tether run-status %s\n",
                 printable(run.id).c_str(), printable(run.id).c_str());
    return kExitInterrupted;
  }
  return report_end(client, run.id, as_json, interrupted);
}

}  // namespace

Result<int> run_fan_out(HubClient& client, const CommandLine& line) {
  TETHER_TRY(request, run_request_from(line));
  TETHER_TRY(created, client.post("/api/v1/runs", protocol::encode_run_request(*request)));
  TETHER_TRY(run, protocol::decode_run_view(created->body));
  if (::isatty(2)) {
    std::fprintf(stderr, "[tether] run %s: %zu agent(s)%s\n", printable(run->id).c_str(),
                 run->tasks.size(),
                 request->selector.empty() ? "" : (" matching " + request->selector).c_str());
  }
  return follow_run(client, *run, line.has("--json"), line.has("--cancel-on-interrupt"));
}

Result<int> list_runs(HubClient& client, const CommandLine& line) {
  if (!line.operands.empty()) return usage("runs: unexpected '" + line.operands[0] + "'");
  std::string target = "/api/v1/runs";
  if (line.has("--limit")) {
    const std::string limit = line.value("--limit");
    if (limit.empty() || limit.find_first_not_of("0123456789") != std::string::npos) {
      return usage("--limit: '" + limit + "' is not a number");
    }
    target += "?limit=" + limit;
  }
  TETHER_TRY(reply, client.get(target));
  if (line.has("--json")) {
    std::printf("%s\n", printable_json(reply->body).c_str());
    return 0;
  }
  TETHER_TRY(runs, protocol::decode_run_list(reply->body));
  std::fputs(run_list_text(*runs).c_str(), stdout);
  return 0;
}

Result<int> show_run(HubClient& client, const CommandLine& line) {
  if (line.operands.size() != 1) return usage("run-status: which run? (one run id)");
  TETHER_TRY(reply, client.get(run_path(line.operands.front())));
  if (line.has("--json")) {
    std::printf("%s\n", printable_json(reply->body).c_str());
    return 0;
  }
  TETHER_TRY(run, protocol::decode_run_view(reply->body));
  std::fputs(run_view_text(*run).c_str(), stdout);
  return 0;
}

Result<std::string> run_task_of(HubClient& client, const std::string& run_id,
                                const std::string& agent) {
  TETHER_TRY(reply, client.get(run_path(run_id)));
  TETHER_TRY(run, protocol::decode_run_view(reply->body));
  std::string names;
  for (const auto& task : run->tasks) {
    if (task.agent == agent) return task.task_id;
    names += (names.empty() ? "" : ", ") + task.agent;
  }
  return make_error(Errc::kNotFound, "not_found",
                    "run " + run_id + " has no task for agent " + agent +
                        (names.empty() ? " (it has no tasks)" : " (its agents: " + names + ")"));
}

}  // namespace tether::cli
