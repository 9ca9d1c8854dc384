// core::CommitBatch: items gathered in one write transaction, handed over
// once just before its COMMIT; those of a failed entry point or a failed
// commit never are.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <stdexcept>

#include "core/commit_batch.hpp"
#include "core/sqlite_store.hpp"

using namespace tether;

namespace {

struct BatchFixture {
  std::string dir;
  std::unique_ptr<core::SqliteStore> store;
  std::vector<std::vector<int>> handed;  // each call's items
  std::unique_ptr<core::CommitBatch<int>> batch;

  BatchFixture() {
    char pattern[] = "/tmp/tether-batch-XXXXXX";
    dir = ::mkdtemp(pattern);
    auto opened = core::SqliteStore::open(dir + "/b.db", core::SqliteStore::Options{});
    REQUIRE(opened.ok());
    store = std::move(*opened);
    REQUIRE(store->apply_schema("CREATE TABLE IF NOT EXISTS sums (total INTEGER);", 1).ok());
    batch = std::make_unique<core::CommitBatch<int>>(*store, [this](std::vector<int> items) {
      int total = 0;
      for (int item : items)
        total += item;
      store->execute("INSERT INTO sums (total) VALUES (?)", static_cast<int64_t>(total));
      handed.push_back(std::move(items));
    });
  }
  ~BatchFixture() {
    batch.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::vector<int64_t> stored_sums() {
    std::vector<int64_t> sums;
    auto rows = store->query("SELECT total FROM sums ORDER BY rowid");
    while (rows.executeStep())
      sums.push_back(rows.getColumn(0).getInt64());
    return sums;
  }
};

}  // namespace

TEST_CASE(
    "a transaction's items are handed over once, in order, and what the handler writes commits",
    "[store]") {
  BatchFixture f;
  f.batch->add(1);
  f.batch->add(2);
  REQUIRE(f.store->guarded("third", [&] { f.batch->add(3); }) == core::SqlStore::Outcome::kDone);
  REQUIRE(f.handed.empty());  // nothing before the commit
  REQUIRE(f.store->commit().ok());
  REQUIRE(f.handed == std::vector<std::vector<int>>{{1, 2, 3}});
  f.batch->add(10);
  REQUIRE(f.store->commit().ok());
  REQUIRE(f.handed == std::vector<std::vector<int>>{{1, 2, 3}, {10}});
  REQUIRE(f.stored_sums() == std::vector<int64_t>{6, 10});
}

TEST_CASE("an item of a guarded block that fails is dropped with its writes", "[store]") {
  BatchFixture f;
  f.batch->add(1);
  const auto outcome = f.store->guarded("failing", [&] {
    f.batch->add(100);
    throw std::runtime_error("this entry point fails");
  });
  REQUIRE(outcome == core::SqlStore::Outcome::kFailed);
  f.batch->add(2);
  REQUIRE(f.store->commit().ok());
  REQUIRE(f.handed == std::vector<std::vector<int>>{{1, 2}});
}

TEST_CASE("items of a commit that failed are never handed over, nor mixed into the next batch",
          "[store]") {
  BatchFixture f;
  f.batch->add(1);
  f.batch->add(2);
  // Runs after the batch gathered its items, before it hands them over.
  f.store->before_commit([] { throw std::runtime_error("a flusher fails"); });
  REQUIRE_FALSE(f.store->commit().ok());
  REQUIRE(f.handed.empty());
  f.batch->add(3);
  REQUIRE(f.store->commit().ok());
  REQUIRE(f.handed == std::vector<std::vector<int>>{{3}});
  REQUIRE(f.stored_sums() == std::vector<int64_t>{3});
}

TEST_CASE("an item added by a before-commit action after the hand-over starts a batch of its own",
          "[store]") {
  BatchFixture f;
  f.batch->add(1);
  // Queued after the batch's first item: runs after its hand-over is queued,
  // as a flusher that adds an item late would.
  f.store->before_commit([&] { f.store->before_commit([&] { f.batch->add(5); }); });
  REQUIRE(f.store->commit().ok());
  REQUIRE(f.handed == std::vector<std::vector<int>>{{1}, {5}});
}
