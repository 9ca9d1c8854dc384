// `tether audit`: the hub's audit trail (GET /api/v1/audit, docs/cli.md),
// which only an admin token may read. Entries oldest first, page by page
// until --limit of them (default 100) or the end.
//
//   tether audit [--actor N] [--action A] [--target T] [--since TIME]
//                [--until TIME] [--after ID] [--limit N] [--json]
//
// TIME is UTC (2026-11-22, 2026-11-22T05:12:00Z) or an age (30m, 2h, 7d).
#pragma once

#include <vector>

#include "cli/command_line.hpp"
#include "cli/hub_client.hpp"
#include "core/result.hpp"

namespace tether::cli {

// The options of `tether audit`, besides the connection options.
const std::vector<OptionSpec>& audit_options();

// Prints the entries (a table, or with --json the page encode_audit_page
// writes) and returns 0. Errors: code "usage" for a bad option value (it
// names the option; nothing was asked of the hub), else the hub's refusal
// or an unreadable answer.
Result<int> run_audit_command(HubClient& client, const CommandLine& line);

}  // namespace tether::cli
