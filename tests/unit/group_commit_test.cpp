// core::SqliteStore under load: group commit (Options::group_commit_ms).
//
// Expected: a lone write commits in its own turn; writes that follow a
// commit closely wait for the interval and commit together.
#include <unistd.h>

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

}  // namespace

TEST_CASE("group commit: a lone write commits in its turn, close followers wait for the interval",
          "[store][group]") {
  TempDir dir;
  Loop loop;  // outlives the store, whose timers close first
  SqliteStore::Options options;
  options.group_commit_ms = 200;
  auto opened = SqliteStore::open(dir.path + "/db", options);
  REQUIRE(opened.ok());
  auto& store = **opened;
  REQUIRE(store.apply_schema("CREATE TABLE IF NOT EXISTS rows (value INTEGER);", 1, {}).ok());
  store.attach_loop(loop);
  std::vector<int> committed;
  auto body = [&]() -> Co<void> {
    insert(store, 1);
    store.after_commit([&] { committed.push_back(1); });
    auto turn = sleep_for(loop, 0);
    (void)co_await turn;
    CHECK(committed == std::vector<int>{1});  // its own turn
    // Three more, each in its own turn though close together: then the
    // writes are sustained.
    for (int i = 0; i < 3; ++i) {
      insert(store, 10 + i);
      auto next = sleep_for(loop, 0);
      (void)co_await next;
      CHECK_FALSE(store.in_transaction());
    }
    // Right after those commits: these wait for the interval, together.
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
