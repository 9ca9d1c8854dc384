// core::SqliteStore under load: group commit (Options::group_commit_ms) and
// checkpoints on a thread of their own (core::WalCheckpointer).
//
// Expected: a lone write commits in its own turn; writes that follow a
// commit closely wait for the interval and commit together; with the
// background checkpointer the WAL is folded back by that thread (the loop
// thread runs no checkpoint) and stays bounded, and everything committed
// is in the file for another connection.
#include <sys/stat.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "core/notification.hpp"
#include "core/run.hpp"
#include "core/sqlite_store.hpp"
#include "core/timer.hpp"

using namespace tether;
using namespace tether::core;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/tether-group-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

void insert(SqliteStore& store, int64_t value) {
  store.begin_write();
  auto statement = store.statement("INSERT INTO rows (value) VALUES (?)");
  statement.bind(1, value);
  statement.exec();
}

uint64_t file_size(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
}

}  // namespace

TEST_CASE("group commit: a lone write commits in its turn, close followers wait for the interval",
          "[store][group]") {
  TempDir dir;
  SqliteStore::Options options;
  options.group_commit_ms = 200;
  auto opened = SqliteStore::open(dir.path + "/db", options);
  REQUIRE(opened.ok());
  auto& store = **opened;
  REQUIRE(store.apply_schema("CREATE TABLE IF NOT EXISTS rows (value INTEGER);", 1, {}).ok());
  Loop loop;
  store.attach_loop(loop);
  std::vector<int> committed;
  auto body = [&]() -> Co<void> {
    insert(store, 1);
    store.after_commit([&] { committed.push_back(1); });
    auto turn = sleep_for(loop, 0);
    (void)co_await turn;
    CHECK(committed == std::vector<int>{1});  // its own turn
    // Right after that commit: these wait for the interval, together.
    insert(store, 2);
    store.after_commit([&] { committed.push_back(2); });
    auto later = sleep_for(loop, 20);
    (void)co_await later;
    insert(store, 3);
    store.after_commit([&] { committed.push_back(3); });
    CHECK(committed == std::vector<int>{1});
    CHECK(store.in_transaction());
    auto interval = sleep_for(loop, 400);
    (void)co_await interval;
    CHECK(committed == std::vector<int>{1, 2, 3});
    CHECK_FALSE(store.in_transaction());
  };
  run_to_completion(loop, body());
}

TEST_CASE("checkpoints run on their own thread and keep the WAL bounded", "[store][group]") {
  TempDir dir;
  const std::string path = dir.path + "/db";
  SqliteStore::Options options;
  options.background_checkpoint_pages = 50;
  options.wal_size_limit = 1 << 20;
  auto opened = SqliteStore::open(path, options);
  REQUIRE(opened.ok());
  auto& store = **opened;
  REQUIRE(
      store.apply_schema("CREATE TABLE IF NOT EXISTS rows (value INTEGER, pad BLOB);", 1, {}).ok());
  uint64_t largest_wal = 0;
  for (int i = 0; i < 2000; ++i) {
    store.begin_write();
    auto statement = store.statement("INSERT INTO rows (value, pad) VALUES (?, zeroblob(2000))");
    statement.bind(1, static_cast<int64_t>(i));
    statement.exec();
    REQUIRE(store.commit().ok());
    largest_wal = std::max(largest_wal, file_size(path + "-wal"));
  }
  // ~4 MB went through the WAL; without checkpoints it would hold it all.
  INFO("largest WAL " << largest_wal << " bytes");
  CHECK(largest_wal < 3'000'000);
  SQLite::Database reader(path, SQLite::OPEN_READONLY);
  CHECK(reader.execAndGet("SELECT count(*) FROM rows").getInt() == 2000);
}
