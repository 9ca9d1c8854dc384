#include "core/sqlite_store.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "core/log.hpp"

namespace tether::core {

bool is_busy(const SQLite::Exception& error) {
  const int code = error.getErrorCode() & 0xff;
  return code == SQLITE_BUSY || code == SQLITE_LOCKED;
}

ScopedStatement::~ScopedStatement() {
  if (!statement_) return;
  // tryReset: the error of a failed step was already thrown to the user.
  (void)statement_->tryReset();
  statement_->clearBindings();
}

SqliteStore::SqliteStore(std::unique_ptr<SQLite::Database> database, std::string path,
                         Options options)
    : SqlStore(path, Timing{options.write_retry_ms, options.group_commit_ms}),
      database_(std::move(database)),
      path_(std::move(path)),
      options_(options),
      reserve_(path_, options.disk_reserve_bytes) {}

SqliteStore::~SqliteStore() {
  // Closing while another process holds the lock: wait for it a while
  // rather than lose what was produced.
  if (writes_waiting() > 0) database_->setBusyTimeout(5000);
  flush_queued_writes();
  queries_.clear();
  statements_.clear();
}

namespace {

// SQLiteCpp's Statement as a SqlStatement (for query()).
class SqliteQueryStatement final : public SqlStatement {
 public:
  SqliteQueryStatement(SQLite::Database& database, const char* sql) : statement_(database, sql) {}
  void bind_text(int index, std::string_view text) override {
    statement_.bind(index, std::string(text));
  }
  void bind_int64(int index, int64_t value) override { statement_.bind(index, value); }
  void bind_null(int index) override { statement_.bind(index); }
  void bind_bytes(int index, std::string_view bytes) override {
    statement_.bindNoCopy(index, bytes.data(), static_cast<int>(bytes.size()));
  }
  bool step() override { return statement_.executeStep(); }
  int64_t exec() override { return statement_.exec(); }
  bool is_null(int column) override { return statement_.getColumn(column).isNull(); }
  std::string text(int column) override {
    auto value = statement_.getColumn(column);
    return value.isNull() ? std::string() : value.getString();
  }
  int64_t int64(int column) override { return statement_.getColumn(column).getInt64(); }
  std::string bytes(int column) override {
    auto value = statement_.getColumn(column);
    return std::string(static_cast<const char*>(value.getBlob()),
                       static_cast<size_t>(value.getBytes()));
  }
  void reset() override {
    // tryReset: the error of a failed step was already thrown to the user.
    (void)statement_.tryReset();
    statement_.clearBindings();
  }

 private:
  SQLite::Statement statement_;
};

}  // namespace

Query SqliteStore::query(const char* sql) {
  auto& slot = queries_[sql];
  if (!slot) slot = std::make_unique<SqliteQueryStatement>(*database_, sql);
  slot->reset();
  return Query(*slot);
}

void SqliteStore::run_control(const char* sql) {
  database_->exec(sql);
}

void SqliteStore::begin_transaction() {
  database_->exec("BEGIN IMMEDIATE");
}

bool SqliteStore::engine_in_transaction() {
  return sqlite3_get_autocommit(database_->getHandle()) == 0;
}

bool SqliteStore::engine_busy(const std::exception& error) const {
  const auto* sqlite = dynamic_cast<const SQLite::Exception*>(&error);
  return sqlite && core::is_busy(*sqlite);
}

namespace {

// Before SQLite initialises, once per process: no memory statistics. With
// them on (SQLite's default) every sqlite3_malloc and free takes a global
// mutex to count; nothing here reads the counts.
void configure_sqlite_once() {
  static const int configured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)configured;  // SQLITE_MISUSE if something initialised SQLite first: harmless
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, Options options) {
  configure_sqlite_once();
  try {
    auto database = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX);
    ::chmod(path.c_str(), 0600);
    database->setBusyTimeout(options.busy_timeout_ms);
    database->exec("PRAGMA journal_mode=WAL");
    database->exec(options.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    database->exec("PRAGMA journal_size_limit=" + std::to_string(options.wal_size_limit));
    database->exec("PRAGMA wal_autocheckpoint=" + std::to_string(options.wal_autocheckpoint_pages));
    database->exec("PRAGMA foreign_keys=ON");
    // A WAL left by a crash can hold much more than it needs to (a large
    // transaction that failed, on a full disk, leaves its frames' space
    // behind): fold it in and give the space back before anything else.
    try {
      database->exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (const SQLite::Exception& e) {
      log_warning("sqlite", path + ": checkpoint at open failed: " + e.what());
    }
    return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(database), path, options));
  } catch (const SQLite::Exception& e) {
    return make_error(Errc::kIo, "database", "cannot open '" + path + "': " + e.what());
  }
}

void SqliteStore::reclaim_space() {
  if (in_transaction()) return;
  // VACUUM writes the whole database again (a temporary copy, then into the
  // WAL): on a disk without room for that it fails and leaves the WAL file
  // as large as it got. Only with twice the file free, and the WAL is cut
  // back either way.
  struct stat file {};
  const uint64_t size = ::stat(path_.c_str(), &file) == 0 ? static_cast<uint64_t>(file.st_size) : 0;
  const auto free = DiskReserve::free_bytes(reserve_.directory());
  if (free && *free >= 2 * size + reserve_.bytes()) {
    try {
      database_->exec("VACUUM");
    } catch (const SQLite::Exception& e) {
      log_warning("sqlite", path_ + ": reclaiming free space failed: " + e.what());
    }
  } else {
    log_info("sqlite", path_ + ": too little free space to compact the file now");
  }
  try {
    database_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const SQLite::Exception& e) {
    log_warning("sqlite", path_ + ": truncating the WAL failed: " + e.what());
  }
}

Result<void> SqliteStore::apply_schema(const char* schema, int version,
                                       std::span<const char* const> upgrades) {
  if (static_cast<size_t>(version) != upgrades.size() + 1 && !upgrades.empty()) {
    throw std::logic_error("apply_schema: version " + std::to_string(version) + " needs " +
                           std::to_string(version - 1) + " upgrades");
  }
  // At start a lock held by another process is worth waiting for.
  database_->setBusyTimeout(10'000);
  struct RestoreBusyTimeout {
    SQLite::Database& database;
    int ms;
    ~RestoreBusyTimeout() { database.setBusyTimeout(ms); }
  } restore{*database_, options_.busy_timeout_ms};
  try {
    SQLite::Transaction transaction(*database_);
    database_->exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    SQLite::Statement current(*database_, "SELECT version FROM schema_version");
    std::optional<int> found;
    if (current.executeStep()) found = current.getColumn(0).getInt();
    current.reset();
    if (found && (*found > version || *found < 1 ||
                  (*found < version && upgrades.size() + 1 < static_cast<size_t>(version)))) {
      return make_error(Errc::kIo, "database",
                        path_ + " has schema version " + std::to_string(*found) +
                            "; this program understands version " + std::to_string(version));
    }
    if (found && *found < version) {
      for (int from = *found; from < version; ++from)
        database_->exec(upgrades[static_cast<size_t>(from - 1)]);
      log_info("sqlite", path_ + ": schema upgraded from version " + std::to_string(*found) +
                             " to " + std::to_string(version));
    }
    database_->exec(schema);
    if (!found) {
      database_->exec("INSERT INTO schema_version (version) VALUES (" + std::to_string(version) +
                      ")");
    } else if (*found != version) {
      database_->exec("UPDATE schema_version SET version = " + std::to_string(version));
    }
    transaction.commit();
    return {};
  } catch (const SQLite::Exception& e) {
    return make_error(Errc::kIo, "database",
                      "cannot create the schema in '" + path_ + "': " + e.what());
  }
}

ScopedStatement SqliteStore::statement(const char* sql) {
  auto& slot = statements_[sql];
  if (!slot) slot = std::make_unique<SQLite::Statement>(*database_, sql);
  (void)slot->tryReset();
  slot->clearBindings();
  return ScopedStatement(*slot);
}

}  // namespace tether::core
