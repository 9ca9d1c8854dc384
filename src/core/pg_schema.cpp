#include "core/pg_schema.hpp"

#include <stdexcept>
#include <string>

namespace tether::core {
namespace {

// The advisory lock's key: any constant unique to this use ("tether" in
// ASCII, 0x746574686572; PostgreSQL 15 takes no hexadecimal literals).
constexpr const char* kLockSql = "SELECT pg_advisory_xact_lock(127979093517682)";

}  // namespace

Result<void> apply_pg_schema_in_transaction(PgConnection& connection, const char* schema,
                                            int version, std::span<const char* const> upgrades,
                                            int first_version) {
  TETHER_TRY(locked, connection.execute(kLockSql));
  TETHER_TRY(current, pg_schema_version(connection));
  if (*current > version)
    return make_error(Errc::kState, "schema_too_new",
                      "the database's schema is version " + std::to_string(*current) +
                          ", newer than this program's " + std::to_string(version) +
                          ": it was written by a newer program; run that version");
  if (*current == 0) {
    TETHER_TRY(created, connection.execute_script(schema));
    TETHER_TRY(table,
               connection.execute_script("CREATE TABLE schema_version (version integer NOT NULL)"));
    const PgParam value = PgParam::text(std::to_string(version));
    TETHER_TRY(stored,
               connection.execute("INSERT INTO schema_version (version) VALUES ($1)", {&value, 1}));
    return {};
  }
  if (*current == version) return {};
  if (*current < first_version)
    return make_error(Errc::kState, "schema_unknown",
                      "the database's schema is version " + std::to_string(*current) +
                          ", older than any this program knows (" + std::to_string(first_version) +
                          ")");
  if (static_cast<size_t>(version - first_version) > upgrades.size())
    throw std::logic_error("apply_pg_schema: an upgrade is missing for a version");
  for (int from = *current; from < version; ++from) {
    auto upgraded = connection.execute_script(upgrades[from - first_version]);
    if (!upgraded)
      return with_context(upgraded.error(), "upgrading the schema from version " +
                                                std::to_string(from) + ": " +
                                                upgraded.error().message);
  }
  const PgParam value = PgParam::text(std::to_string(version));
  TETHER_TRY(stored, connection.execute("UPDATE schema_version SET version = $1", {&value, 1}));
  return {};
}

Result<int> pg_schema_version(PgConnection& connection) {
  TETHER_TRY(exists, connection.execute("SELECT to_regclass('schema_version') IS NOT NULL"));
  if (exists->text(0, 0) != "t") return 0;
  TETHER_TRY(row, connection.execute("SELECT version FROM schema_version"));
  if (row->rows() != 1)
    return make_error(Errc::kIo, "database_error",
                      "schema_version holds " + std::to_string(row->rows()) + " rows, not one");
  return static_cast<int>(row->int64(0, 0));
}

Result<void> apply_pg_schema(PgConnection& connection, const char* schema, int version,
                             std::span<const char* const> upgrades, int first_version) {
  TETHER_TRY(begun, connection.execute_script("BEGIN"));
  auto migrated =
      apply_pg_schema_in_transaction(connection, schema, version, upgrades, first_version);
  if (!migrated) {
    (void)connection.execute_script("ROLLBACK");
    return migrated.error();
  }
  TETHER_TRY(committed, connection.execute_script("COMMIT"));
  return {};
}

}  // namespace tether::core
