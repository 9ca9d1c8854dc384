// What `tether run --selector/--agents` says when the run has ended
// (docs/cli.md, Fleets): a summary on stderr, or with --json one object on
// stdout.
//
//   [tether] run r-5d1c0a0e stopped: max_errors 1 exceeded
//     2 succeeded, 2 failed, 6 skipped
//     slowest: edge-3 12.4s, edge-1 3.0s, edge-2 0.5s
//     edge-2 failed, exit 3
//       out| deploying
//       err| error: disk full
//     edge-5 skipped: agent offline for 60 s
//
// Every word from the hub or an agent goes through printable(). A line of
// the summary never looks like a host's line ("name: ..."): it begins with
// '[' or a space, which no agent name has.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cli/hub_client.hpp"
#include "core/result.hpp"
#include "protocol/run_api.hpp"

namespace tether::cli {

// How many last lines of each stream the summary shows per host.
inline constexpr size_t kSummaryLastLines = 3;
// Hosts that did not succeed shown in detail; the rest are counted.
inline constexpr size_t kSummaryMaxHosts = 20;

struct HostTail {
  std::vector<std::string> stdout_lines;  // oldest first, without newlines
  std::vector<std::string> stderr_lines;
};

struct RunTails {
  std::map<std::string, HostTail> by_task;  // task id -> its tail
  std::string error;                        // why some could not be read ("" if all were)
};

// The run's tasks that did not succeed, in the view's order.
std::vector<const protocol::RunTaskView*> unsuccessful_tasks(const protocol::RunView& run);

// The last lines of the first `max_tasks` tasks that did not succeed and
// wrote something. Stops at the first error and says it in `error`.
RunTails fetch_tails(HubClient& client, const protocol::RunView& run, size_t max_tasks);

// The summary text, each line ending in a newline.
std::string run_summary_text(const protocol::RunView& run, const RunTails& tails,
                             size_t max_hosts = kSummaryMaxHosts);

// A duration for people: "0.4s", "12.4s", "3m05s", "2h07m".
std::string duration_text(int64_t ms);
// finished_at - started_at in milliseconds; -1 without both.
int64_t task_duration_ms(const protocol::RunTaskView& task);
// "2 succeeded, 1 failed": the states that have tasks, in
// run_task_states() order (from the tasks when the view has them, else
// from its counts); "no tasks" for none.
std::string run_counts_text(const protocol::RunView& run);

// `view_json` (the run as GET /api/v1/runs/{id} answered it), with
// "last_lines" added to each task that did not succeed: the last lines of
// its stdout, then those of its stderr (bytes that are not UTF-8 become
// '?'). Errors: `view_json` is not a run.
Result<std::string> run_json(std::string_view view_json, const protocol::RunView& run,
                             const RunTails& tails);

}  // namespace tether::cli
