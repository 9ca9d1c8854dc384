#include "core/wal_checkpointer.hpp"

#include <sqlite3.h>

#include "core/log.hpp"

namespace tether::core {

Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::start(const std::string& path,
                                                                int threshold_pages) {
  sqlite3* connection = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &connection,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (opened != SQLITE_OK) {
    const std::string why = connection ? sqlite3_errmsg(connection) : sqlite3_errstr(opened);
    sqlite3_close(connection);
    return make_error(Errc::kIo, "database", "cannot open '" + path + "' for checkpoints: " + why);
  }
  // A checkpoint waits this long at most for a lock it needs (the writer's
  // WAL restart, another process's checkpoint); PASSIVE never waits on
  // readers or writers otherwise.
  sqlite3_busy_timeout(connection, 100);
  return std::unique_ptr<WalCheckpointer>(new WalCheckpointer(connection, path, threshold_pages));
}

WalCheckpointer::WalCheckpointer(sqlite3* connection, std::string path, int threshold_pages)
    : connection_(connection), path_(std::move(path)), threshold_pages_(threshold_pages) {
  thread_ = std::thread([this] { run(); });
}

WalCheckpointer::~WalCheckpointer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  sqlite3_close(connection_);
}

void WalCheckpointer::note_wal_pages(int pages) {
  if (pages < threshold_pages_) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (wanted_) return;
    wanted_ = true;
  }
  wake_.notify_one();
}

uint64_t WalCheckpointer::checkpoints() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return checkpoints_;
}

void WalCheckpointer::run() {
  int last_failure = SQLITE_OK;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return wanted_ || stopping_; });
      if (stopping_) return;
      wanted_ = false;
    }
    const int outcome = sqlite3_wal_checkpoint_v2(connection_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                                  nullptr, nullptr);
    if (outcome == SQLITE_OK) {
      last_failure = SQLITE_OK;
      std::lock_guard<std::mutex> lock(mutex_);
      ++checkpoints_;
    } else if (outcome != last_failure) {
      // Said once per kind of failure: the next note tries again.
      last_failure = outcome;
      log_warning("sqlite", path_ + ": background checkpoint failed: " +
                                std::string(sqlite3_errstr(outcome)) + " (retried)");
    }
  }
}

}  // namespace tether::core
