// core::SqliteStore: schema versions and the reserve file that keeps room for
// commits on a nearly full disk.
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "core/sqlite_store.hpp"

using namespace tether;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/tether-store-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

uint64_t free_bytes(const std::string& directory) {
  struct statvfs fs {};
  REQUIRE(::statvfs(directory.c_str(), &fs) == 0);
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

constexpr const char* kSchema = "CREATE TABLE IF NOT EXISTS rows (data BLOB NOT NULL);";

Result<void> insert_and_commit(core::SqliteStore& store, size_t bytes) {
  store.begin_write();
  auto insert = store.statement("INSERT INTO rows (data) VALUES (zeroblob(?))");
  insert.bind(1, static_cast<int64_t>(bytes));
  insert.exec();
  return store.commit();
}

}  // namespace

TEST_CASE("schema versions: upgrades run in order, a newer database is refused", "[store]") {
  TempDir dir;
  const std::string path = dir.path + "/s.db";
  {
    auto store = core::SqliteStore::open(path, core::SqliteStore::Options{});
    REQUIRE(store.ok());
    REQUIRE((*store)->apply_schema("CREATE TABLE IF NOT EXISTS a (x INTEGER);", 1).ok());
  }
  static constexpr const char* kUpgrades[] = {
      "ALTER TABLE a ADD COLUMN y INTEGER;",
      "CREATE TABLE b (z INTEGER); INSERT INTO b VALUES (3);",
  };
  auto store = core::SqliteStore::open(path, core::SqliteStore::Options{});
  REQUIRE(store.ok());
  REQUIRE((*store)
              ->apply_schema("CREATE TABLE IF NOT EXISTS a (x INTEGER, y INTEGER);"
                             "CREATE TABLE IF NOT EXISTS b (z INTEGER);",
                             3, kUpgrades)
              .ok());
  auto& db = (*store)->database();
  CHECK(db.execAndGet("SELECT version FROM schema_version").getInt() == 3);
  CHECK(db.execAndGet("SELECT count(*) FROM pragma_table_info('a') WHERE name = 'y'").getInt() ==
        1);
  CHECK(db.execAndGet("SELECT z FROM b").getInt() == 3);
  // Run again at the same version: nothing changes.
  REQUIRE((*store)->apply_schema("CREATE TABLE IF NOT EXISTS b (z INTEGER);", 3, kUpgrades).ok());
  CHECK(db.execAndGet("SELECT count(*) FROM b").getInt() == 1);
  // An older program refuses it.
  auto older = (*store)->apply_schema("CREATE TABLE IF NOT EXISTS a (x INTEGER);", 2);
  REQUIRE_FALSE(older.ok());
  CHECK_THAT(older.error().message,
             Catch::Contains("has schema version 3") && Catch::Contains("understands version 2"));
}

TEST_CASE("the reserve file is given up so that a commit on a nearly full disk fits, then remade",
          "[store]") {
  TempDir dir;
  core::SqliteStore::Options options;
  options.disk_reserve_bytes = 1 << 20;
  {
    auto store = core::SqliteStore::open(dir.path + "/s.db", options);
    REQUIRE(store.ok());
    CHECK(std::filesystem::file_size(dir.path + "/s.db.reserve") == (1u << 20));
  }
  if (::geteuid() != 0) {
    WARN("not root: the nearly-full half needs a tmpfs of its own; not run");
    return;
  }
  // A 12 MiB filesystem of our own, filled to within 512 KiB.
  const std::string fs = dir.path + "/fs";
  std::filesystem::create_directory(fs);
  if (::mount("tmpfs", fs.c_str(), "tmpfs", 0, "size=12m") != 0) {
    WARN("cannot mount a tmpfs here; the nearly-full half is not run");
    return;
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{fs};
  options.disk_reserve_bytes = 2 << 20;
  auto store = core::SqliteStore::open(fs + "/s.db", options);
  REQUIRE(store.ok());
  REQUIRE((*store)->apply_schema(kSchema, 1).ok());
  const std::string reserve = fs + "/s.db.reserve";
  REQUIRE(std::filesystem::exists(reserve));
  {
    std::ofstream ballast(fs + "/ballast", std::ios::binary);
    const std::string block(64 * 1024, '\0');
    while (free_bytes(fs) > (512u << 10) + block.size() &&
           ballast.write(block.data(), block.size()))
      ballast.flush();
  }
  REQUIRE(free_bytes(fs) < (1u << 20));
  // 1 MiB more than is free: it fits only with the reserve given back.
  auto committed = insert_and_commit(**store, 1 << 20);
  CHECK(committed.ok());
  CHECK_FALSE(std::filesystem::exists(reserve));
  CHECK((*store)->database().execAndGet("SELECT count(*) FROM rows").getInt() == 1);
  // Space is back: the next commit makes the reserve again.
  std::filesystem::remove(fs + "/ballast");
  REQUIRE(insert_and_commit(**store, 16).ok());
  CHECK(std::filesystem::exists(reserve));
  CHECK(std::filesystem::file_size(reserve) == (2u << 20));
}

TEST_CASE("a read stopped early ends with its scope: the WAL stays bounded", "[store]") {
  TempDir dir;
  auto store = core::SqliteStore::open(dir.path + "/s.db", core::SqliteStore::Options{});
  REQUIRE(store.ok());
  REQUIRE((*store)->apply_schema(kSchema, 1).ok());
  for (int i = 0; i < 3; ++i)
    REQUIRE(insert_and_commit(**store, 16).ok());
  {
    // A caller that stops at a limit leaves its statement on a row: an open
    // read transaction, until the scope ends.
    auto half_read = (*store)->statement("SELECT rowid FROM rows");
    REQUIRE(half_read.executeStep());
  }
  // Churn, as an outbox with acks keeping up: 25 MiB written, little kept.
  for (int turn = 0; turn < 400; ++turn) {
    REQUIRE(insert_and_commit(**store, 64 * 1024).ok());
    (*store)->begin_write();
    (*store)->database().exec("DELETE FROM rows WHERE rowid = (SELECT max(rowid) FROM rows)");
    REQUIRE((*store)->commit().ok());
  }
  // The WAL starts over after each checkpoint (about 4 MiB); held back by
  // the reader it would hold all 25 MiB.
  CHECK(std::filesystem::file_size(dir.path + "/s.db-wal") < (8u << 20));
}

TEST_CASE("after a read stopped early, another process's writes are seen and ours go through",
          "[store]") {
  TempDir dir;
  const std::string path = dir.path + "/s.db";
  auto store = core::SqliteStore::open(path, core::SqliteStore::Options{});
  REQUIRE(store.ok());
  REQUIRE((*store)->apply_schema(kSchema, 1).ok());
  for (int i = 0; i < 3; ++i)
    REQUIRE(insert_and_commit(**store, 16).ok());
  {
    // One row of three, as a lookup by key or a page at its limit does.
    auto first = (*store)->statement("SELECT rowid FROM rows ORDER BY rowid");
    REQUIRE(first.executeStep());
  }
  // Another process writes (an operator's tool on a running daemon).
  SQLite::Database other(path, SQLite::OPEN_READWRITE);
  other.exec("INSERT INTO rows (data) VALUES (zeroblob(1))");
  {
    // A snapshot kept from the first read would still count three.
    auto count = (*store)->statement("SELECT count(*) FROM rows");
    REQUIRE(count.executeStep());
    CHECK(count.getColumn(0).getInt() == 4);
  }
  // And writing works: a kept snapshot makes BEGIN IMMEDIATE fail
  // ("database is locked") for as long as it is kept.
  REQUIRE(insert_and_commit(**store, 16).ok());
  CHECK((*store)->database().execAndGet("SELECT count(*) FROM rows").getInt() == 5);
}

TEST_CASE(
    "guarded: a lock held elsewhere is busy and keeps nothing; a failure rolls back only "
    "its own writes and actions",
    "[store]") {
  TempDir dir;
  const std::string path = dir.path + "/s.db";
  auto store = core::SqliteStore::open(path, core::SqliteStore::Options{});
  REQUIRE(store.ok());
  REQUIRE((*store)->apply_schema(kSchema, 1).ok());
  auto insert = [&](int64_t bytes) {
    (*store)->begin_write();
    auto statement = (*store)->statement("INSERT INTO rows (data) VALUES (zeroblob(?))");
    statement.bind(1, bytes);
    statement.exec();
  };

  SQLite::Database other(path, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  bool ran = false;
  auto busy = (*store)->guarded("test", [&] {
    insert(1);
    (*store)->after_commit([&] { ran = true; });
  });
  CHECK(busy == core::SqliteStore::Outcome::kBusy);
  CHECK_FALSE((*store)->in_transaction());
  other.exec("COMMIT");

  // Two entry points in one turn; the second fails halfway.
  CHECK((*store)->guarded("first", [&] { insert(2); }) == core::SqliteStore::Outcome::kDone);
  auto failed = (*store)->guarded("second", [&] {
    insert(3);
    (*store)->after_commit([&] { ran = true; });
    throw std::runtime_error("a broken invariant");
  });
  CHECK(failed == core::SqliteStore::Outcome::kFailed);
  REQUIRE((*store)->commit().ok());
  CHECK_FALSE(ran);
  CHECK(
      (*store)->database().execAndGet("SELECT group_concat(length(data)) FROM rows").getString() ==
      "2");
}

TEST_CASE("write(): work waits in order while another process holds the lock", "[store]") {
  TempDir dir;
  const std::string path = dir.path + "/s.db";
  core::Loop loop;
  core::SqliteStore::Options options;
  options.busy_timeout_ms = 5;
  options.write_retry_ms = 10;
  auto store = core::SqliteStore::open(path, options);
  REQUIRE(store.ok());
  REQUIRE((*store)->apply_schema(kSchema, 1).ok());
  (*store)->attach_loop(loop);
  SQLite::Database other(path, SQLite::OPEN_READWRITE);
  other.exec("BEGIN IMMEDIATE");
  for (int bytes = 1; bytes <= 3; ++bytes) {
    (*store)->write([&, bytes] {
      auto statement = (*store)->statement("INSERT INTO rows (data) VALUES (zeroblob(?))");
      statement.bind(1, bytes);
      statement.exec();
    });
  }
  CHECK((*store)->writes_waiting() == 3);
  bool applied = false;
  (*store)->set_on_writes_applied([&] { applied = true; });
  other.exec("COMMIT");
  loop.run();  // the retry timer applies them, the deferred commit stores them
  CHECK(applied);
  CHECK((*store)->writes_waiting() == 0);
  CHECK_FALSE((*store)->in_transaction());
  CHECK(
      (*store)->database().execAndGet("SELECT group_concat(length(data)) FROM rows").getString() ==
      "1,2,3");
}
