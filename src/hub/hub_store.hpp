// The hub's database: hub.db in the data directory (core::SqliteStore: WAL,
// group commit, after-commit actions), or PostgreSQL (core::PgStore,
// pg_hub_schema.hpp). The hub's code sees core::SqlStore either way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/pg_connection.hpp"
#include "core/result.hpp"
#include "core/sql_store.hpp"
#include "core/sqlite_store.hpp"

namespace tether::hub {

// The version of the hub's schema, the same on both backends: version N of
// hub.db and of a PostgreSQL database (pg_hub_schema.hpp) hold the same facts.
inline constexpr int kHubSchemaVersion = 11;

enum class SyncMode { kNormal, kFull };

// Creates the directory (0700), opens hub.db and creates the schema if needed.
// `busy_timeout_ms`: how long a write waits for another process's lock. The
// serving hub keeps it short (its loop thread waits, and it retries busy
// work); one-shot commands (`tether-hub agent add`) can afford to wait.
Result<std::unique_ptr<core::SqliteStore>> open_hub_store(const std::string& data_dir,
                                                          SyncMode sync, int busy_timeout_ms);

// Which database: `uri` empty for hub.db in the data directory, else a
// postgresql:// URI (no password in it: core::check_pg_uri) and the password
// (from --database-password-file; empty: libpq's PGPASSWORD or ~/.pgpass).
struct DatabaseSettings {
  std::string uri;
  std::string password;
};

// The connection settings for `database` (a postgresql:// URI).
core::PgSettings pg_settings(const DatabaseSettings& database);

// Opens the hub's database and brings its schema to kHubSchemaVersion (a
// newer one is refused). The data directory is made either way: it holds
// secrets.key.
Result<std::unique_ptr<core::SqlStore>> open_hub_database(const std::string& data_dir,
                                                          const DatabaseSettings& database,
                                                          SyncMode sync, int busy_timeout_ms);

// Milliseconds since the epoch (wall clock), for lease arithmetic.
int64_t wall_clock_ms();

// A page of `table`'s rows, newest first ((created_at, rowid) descending),
// as the operator API lists tasks and runs: SELECT `columns`, bound in this
// order: the state (when filtered), the id of the last row of the previous
// page (when given: the page goes on below it), then the limit. One
// statement per combination, so each can use its index (the table's
// (state, created_at) one when filtered).
class NewestFirstPages {
 public:
  NewestFirstPages(const std::string& columns, const std::string& table);
  const char* sql(bool has_state, bool has_before) const {
    return sql_[(has_state ? 1 : 0) + (has_before ? 2 : 0)].c_str();
  }

 private:
  std::string sql_[4];
};

}  // namespace tether::hub
