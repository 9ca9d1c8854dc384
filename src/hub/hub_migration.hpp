// `tether-hub migrate --from sqlite:PATH --to postgresql://...`: copies
// every row of a hub's hub.db into a new PostgreSQL database
// (docs/operations.md, "Moving a hub to PostgreSQL").
//
//   --from sqlite:PATH       hub.db, or the data directory that holds it
//   --to postgresql://...    the target database: no password in the URI
//   --to-password-file FILE  its password (a 0600 file), else libpq's
//                            PGPASSWORD or ~/.pgpass
//
// Rules:
// - The source is brought to this program's schema first (as every
//   tether-hub command does) and read in one transaction: a consistent
//   snapshot. Stop the hub first: what it writes after the snapshot is not
//   copied.
// - The target must hold no Tether schema yet. The schema and every row are
//   written in one transaction: on any error nothing is left behind, and the
//   command can be run again.
// - Each table's rows are counted on both sides before the commit; a
//   difference rolls everything back.
// - The key of task secrets is not in the database: secrets.key must be
//   copied to every hub that will serve from the target (the command says
//   so when the source holds sealed secrets).
#pragma once

#include <string>
#include <vector>

namespace tether::hub {

// Runs the command with its arguments (after "migrate"). Returns the exit
// status: 0 copied; 1 refused or failed (stderr says why, naming the flag or
// the table); 2 a usage error.
int run_migrate_command(const std::vector<std::string>& args);

}  // namespace tether::hub
