#include "core/sql_store.hpp"

#include "core/log.hpp"

namespace tether::core {

Query::~Query() {
  if (statement_) statement_->reset();
}

SqlStore::~SqlStore() = default;

bool SqlStore::is_busy(const std::exception& error) const {
  if (const auto* sql = dynamic_cast<const SqlError*>(&error)) return sql->busy();
  return engine_busy(error);
}

void SqlStore::attach_loop(Loop& loop) {
  loop_ = &loop;
  retry_timer_ = std::make_unique<Timer>(loop);
  commit_timer_ = std::make_unique<Timer>(loop);
}

void SqlStore::schedule_commit() {
  loop_->update_time();
  const uint64_t now = loop_->now_ms();
  const uint64_t interval = timing_.group_commit_ms;
  // Sustained load only: an agent's line, then the ack's delete a
  // millisecond later, is not a stream of writes, and waits for nothing.
  const bool sustained = close_commits_ >= kSustainedCommits;
  if (interval == 0 || !sustained || now >= last_commit_ms_ + interval) {
    loop_->defer([this] { (void)commit(); });
    return;
  }
  commit_timer_->start(last_commit_ms_ + interval - now, [this] { (void)commit(); });
}

void SqlStore::begin_write() {
  if (!in_transaction_) {
    // Right after a busy answer, another try would only wait the busy
    // timeout again on the loop thread: say busy at once until the retry
    // interval has passed.
    if (loop_ && busy_until_ms_ != 0) {
      loop_->update_time();
      if (loop_->now_ms() < busy_until_ms_) {
        throw SqlError("database is locked (by another process; retrying)", true);
      }
      busy_until_ms_ = 0;
    }
    try {
      begin_transaction();
    } catch (const std::exception& e) {
      if (is_busy(e) && loop_) {
        loop_->update_time();
        busy_until_ms_ = loop_->now_ms() + timing_.write_retry_ms;
      }
      throw;
    }
    in_transaction_ = true;
    ++transactions_begun_;
    if (loop_) schedule_commit();
  }
  if (guard_ && !guard_->savepoint) {
    defer_control("SAVEPOINT tether_guard");
    guard_->savepoint = true;
  }
}

void SqlStore::after_commit(std::function<void()> action) {
  if (!in_transaction_) {
    action();
    return;
  }
  after_commit_.push_back(std::move(action));
}

void SqlStore::after_failed_statement(const std::string& why) {
  // SQLite rolls the whole transaction back by itself after some errors
  // (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, ...), PostgreSQL when its
  // connection is lost: then nothing of this turn is stored, and nothing
  // queued for after the commit may run.
  if (in_transaction_ && !engine_in_transaction()) {
    in_transaction_ = false;
    before_commit_.clear();
    after_commit_.clear();
    const Error error =
        make_error(Errc::kBusy, "storage_unavailable", name_ + ": transaction lost: " + why);
    log_error("store", error.message);
    if (on_commit_failed_) on_commit_failed_(error);
  }
}

SqlStore::Outcome SqlStore::guarded(std::string_view what, const std::function<void()>& work) {
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
    if (frame.savepoint) defer_control("RELEASE tether_guard");
    flush_writes();  // their errors are this entry point's (the RELEASE goes with them)
    return Outcome::kDone;
  } catch (const std::exception& e) {
    busy = is_busy(e);
    failure = e.what();
  }
  guard_ = nullptr;
  if (frame.savepoint && in_transaction_) {
    try {
      discard_queued_writes();
      run_control("ROLLBACK TO tether_guard");
      run_control("RELEASE tether_guard");
    } catch (const std::exception&) {
      // The savepoint went with a rollback the engine made itself; see below.
    }
  }
  after_failed_statement(failure);
  if (in_transaction_) {
    // What this entry point queued goes with its writes.
    if (after_commit_.size() > frame.after_mark) after_commit_.resize(frame.after_mark);
    if (before_commit_.size() > frame.before_mark) before_commit_.resize(frame.before_mark);
  }
  if (busy) {
    log_debug("store", std::string(what) + ": " + name_ + " is locked elsewhere; retrying");
    return Outcome::kBusy;
  }
  log_error("store", std::string(what) + ": " + name_ + ": " + failure);
  return Outcome::kFailed;
}

bool SqlStore::try_begin_write() {
  try {
    begin_write();
    return true;
  } catch (const std::exception& e) {
    if (is_busy(e)) return false;
    fatal(std::string("cannot begin a write: ") + e.what());
    return false;
  }
}

void SqlStore::fatal(const std::string& why) {
  const std::string message = name_ + ": " + why;
  log_error("store", message);
  if (on_fatal_) {
    on_fatal_(message);
  } else {
    throw std::runtime_error(message);
  }
}

bool SqlStore::try_read(std::string_view what, const std::function<void()>& read) {
  try {
    read();
    return true;
  } catch (const std::exception& e) {
    if (!is_busy(e)) {
      fatal(std::string(what) + ": " + e.what());
      return false;
    }
    log_debug("store", std::string(what) + ": " + name_ + " is locked elsewhere");
    if (on_read_busy_) on_read_busy_();
    return false;
  }
}

void SqlStore::run_write(const std::function<void()>& work) {
  // The write boundary: nothing a write throws goes on to unwind whoever
  // asked for it (a coroutine with children running would terminate).
  try {
    work();
    flush_writes();
  } catch (const std::exception& e) {
    fatal(std::string("a write failed: ") + e.what());
  }
}

void SqlStore::write(std::function<void()> work) {
  if (queued_writes_.empty() && try_begin_write()) {
    run_write(work);
    return;
  }
  // Another process holds the write lock: keep the order, try again soon.
  if (queued_writes_.empty()) {
    log_warning("store", name_ + " is locked by another process; writes wait for it");
  }
  queued_writes_.push_back(std::move(work));
  if (retry_timer_ && !retry_timer_->active()) {
    retry_timer_->start(timing_.write_retry_ms, [this] { retry_queued_writes(); });
  }
}

void SqlStore::retry_queued_writes() {
  if (queued_writes_.empty()) return;
  if (!try_begin_write()) {
    retry_timer_->start(timing_.write_retry_ms, [this] { retry_queued_writes(); });
    return;
  }
  log_info("store", name_ + " is writable again; " + std::to_string(queued_writes_.size()) +
                        " waiting write(s) applied");
  while (!queued_writes_.empty()) {
    auto work = std::move(queued_writes_.front());
    queued_writes_.pop_front();
    run_write(work);
  }
  if (on_writes_applied_) on_writes_applied_();
}

void SqlStore::flush_queued_writes() {
  if (!queued_writes_.empty()) {
    busy_until_ms_ = 0;
    if (try_begin_write()) {
      while (!queued_writes_.empty()) {
        run_write(queued_writes_.front());
        queued_writes_.pop_front();
      }
    } else {
      log_error("store", name_ + ": still locked by another process; " +
                             std::to_string(queued_writes_.size()) + " write(s) not stored");
    }
  }
  if (in_transaction_) (void)commit();
  retry_timer_.reset();
  commit_timer_.reset();
}

Result<void> SqlStore::commit() {
  if (!in_transaction_) return {};
  if (loop_ && commit_timer_) {
    commit_timer_->stop();
    loop_->update_time();
    const uint64_t now = loop_->now_ms();
    const bool close = last_commit_ms_ != 0 && now < last_commit_ms_ + timing_.group_commit_ms;
    close_commits_ = close ? close_commits_ + 1 : 0;
    last_commit_ms_ = now;
  }
  before_engine_commit();
  try {
    // Flushers may write (within this transaction) and queue more, which
    // run after them.
    while (!before_commit_.empty()) {
      auto flushers = std::move(before_commit_);
      before_commit_.clear();
      for (auto& flush : flushers)
        flush();
    }
    in_transaction_ = false;
    run_control("COMMIT");
  } catch (const std::exception& e) {
    in_transaction_ = false;
    Error error =
        make_error(Errc::kBusy, "storage_unavailable", name_ + ": commit failed: " + e.what());
    try {
      run_control("ROLLBACK");
    } catch (const std::exception&) {
      // Already rolled back by the engine (a failed COMMIT may do so itself).
    }
    before_commit_.clear();  // queued by a flusher before another one failed
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
      log_error("store", name_ + ": an action after a commit failed: " + e.what());
    }
  }
  return {};
}

}  // namespace tether::core
