// Versioned schema migrations for a PostgreSQL database, the rule
// SqliteStore::apply_schema follows for SQLite: a new database gets
// `schema`; one at an older version runs, in order, the upgrade of each
// version it is behind (upgrades[0] turns version 1 into 2); one from a
// newer program is refused, untouched. `first_version`: the oldest version
// a database can have (upgrades[0] turns it into first_version + 1); a
// schema first made at version N passes N.
//
// The version is the one row of the table schema_version. Everything runs in
// one transaction that first takes a transaction-level advisory lock
// (pg_advisory_xact_lock), so several processes starting at once against one
// database migrate it once: the others wait, then find it current.
#pragma once

#include <span>

#include "core/pg_connection.hpp"
#include "core/result.hpp"

namespace tether::core {

// Errors: kState (code "schema_too_new") for a database from a newer
// program; the connection's errors (pg_connection.hpp) otherwise. On any
// error nothing is changed (the transaction is rolled back).
Result<void> apply_pg_schema(PgConnection& connection, const char* schema, int version,
                             std::span<const char* const> upgrades = {}, int first_version = 1);

// The same inside a transaction the caller opened (and commits or rolls
// back), so that what it writes next commits with the schema or not at all.
Result<void> apply_pg_schema_in_transaction(PgConnection& connection, const char* schema,
                                            int version, std::span<const char* const> upgrades = {},
                                            int first_version = 1);

// The database's schema version; 0 when it has none yet.
Result<int> pg_schema_version(PgConnection& connection);

}  // namespace tether::core
