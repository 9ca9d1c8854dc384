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
    : database_(std::move(database)),
      path_(std::move(path)),
      options_(options),
      reserve_(path_, options.disk_reserve_bytes) {}

SqliteStore::~SqliteStore() {
  if (!queued_writes_.empty()) {
    // Closing while another process holds the lock: wait for it a while
    // rather than lose what was produced.
    database_->setBusyTimeout(5000);
    busy_until_ms_ = 0;
    if (try_begin_write()) {
      while (!queued_writes_.empty()) {
        run_write(queued_writes_.front());
        queued_writes_.pop_front();
      }
    } else {
      log_error("store", path_ + ": still locked by another process; " +
                             std::to_string(queued_writes_.size()) + " write(s) not stored");
    }
  }
  if (in_transaction_) (void)commit();
  retry_timer_.reset();
  statements_.clear();
}

void SqliteStore::attach_loop(Loop& loop) {
  loop_ = &loop;
  retry_timer_ = std::make_unique<Timer>(loop);
  commit_timer_ = std::make_unique<Timer>(loop);
}

void SqliteStore::schedule_commit() {
  loop_->update_time();
  const uint64_t now = loop_->now_ms();
  const uint64_t interval = options_.group_commit_ms;
  // Sustained load only: an agent's line, then the ack's delete a
  // millisecond later, is not a stream of writes, and waits for nothing.
  const bool sustained = close_commits_ >= kSustainedCommits;
  if (interval == 0 || !sustained || now >= last_commit_ms_ + interval) {
    loop_->defer([this] { (void)commit(); });
    return;
  }
  commit_timer_->start(last_commit_ms_ + interval - now, [this] { (void)commit(); });
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
  if (in_transaction_) return;
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

void SqliteStore::begin_write() {
  if (!in_transaction_) {
    // Right after a busy answer, another try would only wait the busy
    // timeout again on the loop thread: say busy at once until the retry
    // interval has passed.
    if (loop_ && busy_until_ms_ != 0) {
      loop_->update_time();
      if (loop_->now_ms() < busy_until_ms_) {
        throw SQLite::Exception("database is locked (by another process; retrying)", SQLITE_BUSY);
      }
      busy_until_ms_ = 0;
    }
    try {
      database_->exec("BEGIN IMMEDIATE");
    } catch (const SQLite::Exception& e) {
      if (is_busy(e) && loop_) {
        loop_->update_time();
        busy_until_ms_ = loop_->now_ms() + options_.write_retry_ms;
      }
      throw;
    }
    in_transaction_ = true;
    if (loop_) schedule_commit();
  }
  if (guard_ && !guard_->savepoint) {
    database_->exec("SAVEPOINT tether_guard");
    guard_->savepoint = true;
  }
}

void SqliteStore::after_commit(std::function<void()> action) {
  if (!in_transaction_) {
    action();
    return;
  }
  after_commit_.push_back(std::move(action));
}

void SqliteStore::after_failed_statement(const std::string& why) {
  // SQLite rolls the whole transaction back by itself after some errors
  // (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, ...): then nothing of this
  // turn is stored, and nothing queued for after the commit may run.
  if (in_transaction_ && sqlite3_get_autocommit(database_->getHandle()) != 0) {
    in_transaction_ = false;
    before_commit_.clear();
    after_commit_.clear();
    const Error error =
        make_error(Errc::kBusy, "storage_unavailable", path_ + ": transaction lost: " + why);
    log_error("store", error.message);
    if (on_commit_failed_) on_commit_failed_(error);
  }
}

SqliteStore::Outcome SqliteStore::guarded(std::string_view what,
                                          const std::function<void()>& work) {
  if (guard_) {  // inside another entry point's boundary: its rules apply
    work();
    return Outcome::kDone;
  }
  GuardFrame frame;
  frame.after_mark = after_commit_.size();
  frame.before_mark = before_commit_.size();
  guard_ = &frame;
  std::string failure;
  bool busy = false;
  try {
    work();
    guard_ = nullptr;
    if (frame.savepoint) database_->exec("RELEASE tether_guard");
    return Outcome::kDone;
  } catch (const SQLite::Exception& e) {
    busy = is_busy(e);
    failure = e.what();
  } catch (const std::exception& e) {
    failure = std::string("internal error: ") + e.what();
  }
  guard_ = nullptr;
  if (frame.savepoint && in_transaction_) {
    try {
      database_->exec("ROLLBACK TO tether_guard");
      database_->exec("RELEASE tether_guard");
    } catch (const SQLite::Exception&) {
      // The savepoint went with a rollback SQLite made itself; see below.
    }
  }
  after_failed_statement(failure);
  if (in_transaction_) {
    // What this entry point queued goes with its writes.
    if (after_commit_.size() > frame.after_mark) after_commit_.resize(frame.after_mark);
    if (before_commit_.size() > frame.before_mark) before_commit_.resize(frame.before_mark);
  }
  if (busy) {
    log_debug("store",
              std::string(what) + ": " + path_ + " is locked by another process; retrying");
    return Outcome::kBusy;
  }
  log_error("store", std::string(what) + ": " + path_ + ": " + failure);
  return Outcome::kFailed;
}

bool SqliteStore::try_begin_write() {
  try {
    begin_write();
    return true;
  } catch (const SQLite::Exception& e) {
    if (is_busy(e)) return false;
    fatal(std::string("cannot begin a write: ") + e.what());
    return false;
  }
}

void SqliteStore::fatal(const std::string& why) {
  const std::string message = path_ + ": " + why;
  log_error("store", message);
  if (on_fatal_) {
    on_fatal_(message);
  } else {
    throw std::runtime_error(message);
  }
}

bool SqliteStore::try_read(std::string_view what, const std::function<void()>& read) {
  try {
    read();
    return true;
  } catch (const SQLite::Exception& e) {
    if (!is_busy(e)) {
      fatal(std::string(what) + ": " + e.what());
      return false;
    }
    log_debug("store", std::string(what) + ": " + path_ + " is locked by another process");
    if (on_read_busy_) on_read_busy_();
    return false;
  }
}

void SqliteStore::run_write(const std::function<void()>& work) {
  // The write boundary: nothing a write throws goes on to unwind whoever
  // asked for it (a coroutine with children running would terminate).
  try {
    work();
  } catch (const SQLite::Exception& e) {
    fatal(std::string("a write failed: ") + e.what());
  } catch (const std::exception& e) {
    fatal(std::string("a write failed: internal error: ") + e.what());
  }
}

void SqliteStore::write(std::function<void()> work) {
  if (queued_writes_.empty() && try_begin_write()) {
    run_write(work);
    return;
  }
  // Another process holds the write lock: keep the order, try again soon.
  if (queued_writes_.empty()) {
    log_warning("store", path_ + " is locked by another process; writes wait for it");
  }
  queued_writes_.push_back(std::move(work));
  if (retry_timer_ && !retry_timer_->active()) {
    retry_timer_->start(options_.write_retry_ms, [this] { retry_queued_writes(); });
  }
}

void SqliteStore::retry_queued_writes() {
  if (queued_writes_.empty()) return;
  if (!try_begin_write()) {
    retry_timer_->start(options_.write_retry_ms, [this] { retry_queued_writes(); });
    return;
  }
  log_info("store", path_ + " is writable again; " + std::to_string(queued_writes_.size()) +
                        " waiting write(s) applied");
  while (!queued_writes_.empty()) {
    auto work = std::move(queued_writes_.front());
    queued_writes_.pop_front();
    run_write(work);
  }
  if (on_writes_applied_) on_writes_applied_();
}

Result<void> SqliteStore::commit() {
  if (!in_transaction_) return {};
  if (loop_) {
    commit_timer_->stop();
    loop_->update_time();
    const uint64_t now = loop_->now_ms();
    const bool close = last_commit_ms_ != 0 && now < last_commit_ms_ + options_.group_commit_ms;
    close_commits_ = close ? close_commits_ + 1 : 0;
    last_commit_ms_ = now;
  }
  reserve_.guard();
  try {
    // Flushers may write (within this transaction) but must not queue more.
    auto flushers = std::move(before_commit_);
    before_commit_.clear();
    for (auto& flush : flushers)
      flush();
    in_transaction_ = false;
    database_->exec("COMMIT");
  } catch (const SQLite::Exception& e) {
    in_transaction_ = false;
    Error error =
        make_error(Errc::kBusy, "storage_unavailable", path_ + ": commit failed: " + e.what());
    try {
      database_->exec("ROLLBACK");
    } catch (const SQLite::Exception&) {
      // Already rolled back by SQLite (a failed COMMIT may do so itself).
    }
    after_commit_.clear();
    log_error("store", error.message);
    if (on_commit_failed_) on_commit_failed_(error);
    return error;
  }
  auto actions = std::move(after_commit_);
  after_commit_.clear();
  // Each action is an entry point of its own: one that stores something
  // (a wake that dispatches the next task) runs its own guarded(). This
  // catch is the last resort that keeps the loop alive.
  for (auto& action : actions) {
    try {
      action();
    } catch (const std::exception& e) {
      log_error("store", path_ + ": an action after a commit failed: " + e.what());
    }
  }
  return {};
}

}  // namespace tether::core
