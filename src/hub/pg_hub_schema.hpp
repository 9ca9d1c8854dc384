// The hub's tables on PostgreSQL: the same tables, columns and meanings as
// hub.db's (hub_store.cpp, schema version 11), in PostgreSQL's types.
//
// The version number is shared with hub.db: version N holds the same facts
// on both, which is what `tether-hub migrate` relies on. A PostgreSQL
// database starts at version 10 (there are no older ones to upgrade).
//
// Where the types differ, and why:
// - INTEGER becomes bigint (SQLite's integers are 64-bit), BLOB bytea.
// - hub.db orders some lists by SQLite's implicit rowid (insertion order);
//   here tasks, runs and operator_tokens have an explicit identity column
//   named rowid, so the same ORDER BY reads the same order on both.
// - events.id and audit_log.id are identities (AUTOINCREMENT's "never
//   reused, always increasing" within one database).
// - audit_log's append-only rule is a trigger function here.
#pragma once

#include "core/pg_connection.hpp"
#include "core/pg_store.hpp"
#include "core/result.hpp"
#include "hub/hub_store.hpp"

namespace tether::hub {

// Brings the database to kHubSchemaVersion inside the caller's transaction
// (core::apply_pg_schema_in_transaction): creates it when new, refuses one
// from a newer tether-hub (kState, "schema_too_new").
Result<void> apply_pg_hub_schema_in_transaction(core::PgConnection& connection);

// Connects and brings the database to kHubSchemaVersion, in one
// transaction (concurrent hubs starting on a new database create it once).
// Several hubs may serve one database (docs/architecture.md).
Result<std::unique_ptr<core::PgStore>> open_pg_hub_store(const core::PgSettings& settings);

// The tables in an order that satisfies their references (parents first),
// for copying every row.
inline constexpr const char* kHubTables[] = {
    "agents", "agent_labels", "registration_tokens", "operator_tokens", "audit_log",       "runs",
    "tasks",  "attempts",     "task_secrets",        "events",          "browser_sessions"};

}  // namespace tether::hub
