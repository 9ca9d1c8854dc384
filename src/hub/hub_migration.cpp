#include "hub/hub_migration.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <string_view>

#include "core/pg_connection.hpp"
#include "core/pg_schema.hpp"
#include "core/secret_file.hpp"
#include "hub/database_owner.hpp"
#include "hub/hub_store.hpp"
#include "hub/pg_hub_schema.hpp"

namespace tether::hub {
namespace {

struct MigrateFlags {
  std::string from;  // the data directory
  core::PgSettings to;
};

// Rows per INSERT: fewer round trips, under PostgreSQL's 65,535 parameters.
constexpr size_t kRowsPerInsert = 200;
// ... and under this many bytes of values, so a batch of large output
// chunks stays a bounded message.
constexpr size_t kBytesPerInsert = 8 << 20;

int fail(const std::string& message) {
  std::fprintf(stderr, "tether-hub migrate: %s\n", message.c_str());
  return 1;
}

int usage(const std::string& message) {
  std::fprintf(stderr,
               "tether-hub migrate: %s\n"
               "usage: tether-hub migrate --from sqlite:PATH --to postgresql://USER@HOST:PORT/DB\n"
               "         [--to-password-file FILE]\n",
               message.c_str());
  return 2;
}

// --from sqlite:PATH: hub.db or the directory holding it.
Result<std::string> data_dir_of(const std::string& from) {
  constexpr std::string_view kScheme = "sqlite:";
  if (!from.starts_with(kScheme))
    return make_error(Errc::kInvalid, "usage", "--from: expected sqlite:PATH");
  std::string path = from.substr(kScheme.size());
  struct stat info {};
  if (path.empty() || ::stat(path.c_str(), &info) != 0)
    return make_error(Errc::kNotFound, "usage", "--from: no such file or directory: " + path);
  if (S_ISDIR(info.st_mode)) {
    if (::stat((path + "/hub.db").c_str(), &info) != 0)
      return make_error(Errc::kNotFound, "usage", "--from: no hub.db in " + path);
    return path;
  }
  const size_t slash = path.rfind('/');
  if (path.substr(slash == std::string::npos ? 0 : slash + 1) != "hub.db")
    return make_error(Errc::kInvalid, "usage", "--from: expected hub.db or its directory");
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

Result<MigrateFlags> parse(const std::vector<std::string>& args) {
  MigrateFlags flags;
  std::string from, password_file;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg != "--from" && arg != "--to" && arg != "--to-password-file")
      return make_error(Errc::kInvalid, "usage", "unknown argument " + arg);
    if (i + 1 >= args.size()) return make_error(Errc::kInvalid, "usage", arg + " needs a value");
    const std::string& value = args[++i];
    if (arg == "--from") from = value;
    if (arg == "--to") flags.to.uri = value;
    if (arg == "--to-password-file") password_file = value;
  }
  if (from.empty()) return make_error(Errc::kInvalid, "usage", "--from is required");
  if (flags.to.uri.empty()) return make_error(Errc::kInvalid, "usage", "--to is required");
  if (auto uri = core::check_pg_uri(flags.to.uri, "--to"); !uri)
    return make_error(Errc::kInvalid, "usage", uri.error().message);
  TETHER_TRY(data_dir, data_dir_of(from));
  flags.from = *data_dir;
  if (!password_file.empty()) {
    auto password = core::read_secret_file(password_file, "password file");
    if (!password)
      return with_context(password.error(), "--to-password-file: " + password.error().message);
    flags.to.password = *password;
  }
  flags.to.application_name = "tether-hub migrate";
  return flags;
}

// Copies `table` from hub.db into the open PostgreSQL transaction; returns
// the rows copied. hub.db's rowid goes along where PostgreSQL has a column
// of that name (pg_hub_schema.hpp), so lists keep their order.
Result<int64_t> copy_table(SQLite::Database& source, core::PgConnection& target,
                           const std::string& table) {
  TETHER_TRY(has_rowid,
             target.execute("SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND "
                            "column_name = 'rowid'",
                            std::vector<core::PgParam>{core::PgParam::text(table)}));
  SQLite::Statement rows(source, "SELECT " + std::string(has_rowid->rows() ? "rowid, " : "") +
                                     "* FROM " + table + " ORDER BY rowid");
  const int columns = rows.getColumnCount();
  std::string names;
  for (int c = 0; c < columns; ++c)
    names += (c ? ", " : "") + std::string(rows.getColumnName(c));
  const std::string head = "INSERT INTO " + table + " (" + names + ") VALUES ";
  std::vector<core::PgParam> params;
  std::string values;
  size_t batch_rows = 0, batch_bytes = 0;
  int64_t copied = 0;
  auto flush = [&]() -> Result<void> {
    if (batch_rows == 0) return {};
    TETHER_TRY(inserted, target.execute(head + values, params));
    copied += inserted->changed_rows();
    params.clear();
    values.clear();
    batch_rows = batch_bytes = 0;
    return {};
  };
  while (rows.executeStep()) {
    values += batch_rows ? ", (" : "(";
    for (int c = 0; c < columns; ++c) {
      const SQLite::Column column = rows.getColumn(c);
      if (column.isNull()) {
        params.push_back(core::PgParam::null());
      } else if (column.isBlob()) {
        params.push_back(core::PgParam::bytes(
            std::string(static_cast<const char*>(column.getBlob()), column.getBytes())));
      } else {
        params.push_back(core::PgParam::text(column.getString()));
      }
      batch_bytes += column.getBytes();
      values += (c ? ", $" : "$") + std::to_string(params.size());
    }
    values += ")";
    if (++batch_rows == kRowsPerInsert || batch_bytes >= kBytesPerInsert) {
      TETHER_TRY(flushed, flush());
    }
  }
  TETHER_TRY(flushed, flush());
  return copied;
}

// Identity columns continue after the copied values (setval; PostgreSQL's
// "Sequence Manipulation Functions").
Result<void> continue_identities(core::PgConnection& target) {
  return target.execute_script(R"SQL(
DO $$
DECLARE
  c record;
  highest bigint;
BEGIN
  FOR c IN SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND is_identity = 'YES' LOOP
    EXECUTE format('SELECT coalesce(max(%I), 0) FROM %I', c.column_name, c.table_name)
      INTO highest;
    PERFORM setval(pg_get_serial_sequence(c.table_name, c.column_name), highest + 1, false);
  END LOOP;
END
$$;
)SQL");
}

Result<int64_t> count_rows(core::PgConnection& target, const std::string& table) {
  TETHER_TRY(count, target.execute("SELECT count(*) FROM " + table));
  return count->int64(0, 0);
}

// Everything inside the target's transaction; the caller commits.
int copy_all(SQLite::Database& source, core::PgConnection& target, const std::string& uri) {
  auto schema = apply_pg_hub_schema_in_transaction(target);
  if (!schema) return fail("--to: " + schema.error().message);
  int64_t total = 0;
  for (const char* table : kHubTables) {
    auto copied = copy_table(source, target, table);
    if (!copied) return fail("copying " + std::string(table) + ": " + copied.error().message);
    SQLite::Statement source_count(source, "SELECT count(*) FROM " + std::string(table));
    source_count.executeStep();
    const int64_t expected = source_count.getColumn(0).getInt64();
    auto stored = count_rows(target, table);
    if (!stored) return fail("counting " + std::string(table) + ": " + stored.error().message);
    if (*stored != expected || *copied != expected)
      return fail(std::string(table) + ": hub.db holds " + std::to_string(expected) +
                  " rows, the target " + std::to_string(*stored) + "; nothing was kept");
    std::fprintf(stderr, "tether-hub migrate: %-20s %lld rows\n", table,
                 static_cast<long long>(expected));
    total += expected;
  }
  if (auto identities = continue_identities(target); !identities)
    return fail(identities.error().message);
  std::fprintf(stderr, "tether-hub migrate: %lld rows in %zu tables ready to commit to %s\n",
               static_cast<long long>(total), std::size(kHubTables), uri.c_str());
  return 0;
}

}  // namespace

int run_migrate_command(const std::vector<std::string>& args) {
  auto flags = parse(args);
  if (!flags)
    return flags.error().code == "usage" ? usage(flags.error().message)
                                         : fail(flags.error().message);
  DatabaseOwner owner(flags->from);
  auto store = open_hub_store(flags->from, SyncMode::kFull, 10'000);
  if (!store) return fail("--from: " + store.error().message);
  auto target = core::PgConnection::connect(flags->to);
  if (!target) return fail("--to: " + target.error().message);
  auto version = core::pg_schema_version(**target);
  if (!version) return fail("--to: " + version.error().message);
  if (*version != 0)
    return fail("--to: the database already holds a Tether schema (version " +
                std::to_string(*version) + "); migrate copies into a new, empty database");
  SQLite::Database& source = (*store)->database();
  source.exec("BEGIN");  // one snapshot of hub.db for every table
  if (auto begun = (*target)->execute_script("BEGIN"); !begun)
    return fail("--to: " + begun.error().message);
  const int status = copy_all(source, **target, flags->to.uri);
  source.exec("COMMIT");
  if (status != 0) {
    (void)(*target)->execute_script("ROLLBACK");
    return status;
  }
  if (auto committed = (*target)->execute_script("COMMIT"); !committed)
    return fail("--to: the commit failed, nothing was kept: " + committed.error().message);
  SQLite::Statement secrets(source, "SELECT count(*) FROM task_secrets");
  secrets.executeStep();
  if (secrets.getColumn(0).getInt64() > 0)
    std::fprintf(stderr,
                 "tether-hub migrate: hub.db holds sealed task secrets: copy %s/secrets.key "
                 "(mode 0600) to the data directory of every hub that serves from the target\n",
                 flags->from.c_str());
  std::printf("copied %s/hub.db (schema %d) to %s\n", flags->from.c_str(), kHubSchemaVersion,
              flags->to.uri.c_str());
  return 0;
}

}  // namespace tether::hub
