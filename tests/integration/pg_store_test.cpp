// core::PgStore, the PostgreSQL engine of core::SqlStore, against a real
// postgresql-15 (TestPostgres): the rules sql_store.hpp states (a turn's
// writes commit together, after-commit actions wait for the commit, an entry
// point's failure takes back only its own writes) and pg_store.hpp's
// (placeholders, bytes, busy errors, a new connection after a restart).
#include <catch2/catch.hpp>

#include "core/pg_store.hpp"
#include "test_postgres.hpp"

namespace tether::test {
namespace {

std::unique_ptr<core::PgStore> open_store(const TestPostgres& server) {
  core::PgStore::Options options;
  options.settings.uri = server.url();
  options.settings.password = server.password();
  auto store = core::PgStore::open(options);
  INFO((store ? std::string() : store.error().message));
  REQUIRE(store.ok());
  return std::move(*store);
}

int64_t count_rows(core::SqlStore& store) {
  auto query = store.query("SELECT count(*) FROM items");
  REQUIRE(query.executeStep());
  return query.getColumn(0).getInt64();
}

}  // namespace

TEST_CASE("PgStore placeholders: ? in order, ?N as given, none inside quotes", "[postgres]") {
  CHECK(core::pg_placeholders("SELECT a FROM t WHERE a = ? AND b = ?") ==
        "SELECT a FROM t WHERE a = $1 AND b = $2");
  CHECK(core::pg_placeholders("VALUES (?1, ?2, COALESCE(?3, ?1))") ==
        "VALUES ($1, $2, COALESCE($3, $1))");
  CHECK(core::pg_placeholders("SELECT '?', \"a?\" FROM t WHERE x = ? AND y = 'it''s ?'") ==
        "SELECT '?', \"a?\" FROM t WHERE x = $1 AND y = 'it''s ?'");
}

TEST_CASE("PgStore text arrays: every element comes back as it went, none as NULL", "[postgres]") {
  TestPostgres server;
  auto store = open_store(server);
  const std::vector<std::string> elements = {"edge-1",      "NULL", "null",      "",   "q\"uote",
                                             "back\\slash", "{,}",  "two words", "ünï"};
  auto query = store->query(
      "SELECT e, e IS NULL FROM unnest(?::text[]) WITH ORDINALITY AS "
      "a (e, n) ORDER BY n");
  query.bind(1, core::pg_text_array(elements));
  std::vector<std::string> back;
  while (query.executeStep()) {
    CHECK(query.getColumn(1).getString() == "f");
    back.push_back(query.getColumn(0).getString());
  }
  CHECK(back == elements);
}

TEST_CASE(
    "PgStore: a turn's writes commit together; actions wait for the commit; a failed "
    "entry point takes back only its own writes",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);

  std::vector<std::string> done;
  auto first = store->guarded("first", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("one"));
    store->after_commit([&] { done.push_back("first"); });
  });
  CHECK(first == core::SqlStore::Outcome::kDone);
  // The second entry point fails at its second statement: its first insert
  // and its action go, the first entry point's stay.
  auto second = store->guarded("second", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{2}, std::string("two"));
    store->after_commit([&] { done.push_back("second"); });
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("again"));
  });
  CHECK(second == core::SqlStore::Outcome::kFailed);
  CHECK(done.empty());
  // Not committed yet: another connection sees nothing.
  CHECK(server.psql("SELECT count(*) FROM items") == "0\n");
  REQUIRE(store->commit().ok());
  CHECK(done == std::vector<std::string>{"first"});
  CHECK(server.psql("SELECT id, name FROM items ORDER BY id") == "1|one\n");

  // Every byte value through bind_bytes and back; NULL and integers.
  std::string bytes;
  for (int i = 0; i < 256; ++i)
    bytes.push_back(static_cast<char>(i));
  auto stored = store->guarded("bytes", [&] {
    store->begin_write();
    auto insert = store->query("INSERT INTO items (id, name, data) VALUES (?, ?, ?)");
    insert.bind(1, int64_t{INT64_MAX});
    insert.bind(2, std::nullopt);
    insert.bind_bytes(3, bytes);
    CHECK(insert.exec() == 1);
  });
  REQUIRE(stored == core::SqlStore::Outcome::kDone);
  REQUIRE(store->commit().ok());
  auto read = store->query("SELECT id, name, data FROM items WHERE id = ?");
  read.bind(1, int64_t{INT64_MAX});
  REQUIRE(read.executeStep());
  CHECK(read.getColumn(0).getInt64() == INT64_MAX);
  CHECK(read.getColumn(1).isNull());
  CHECK(read.getColumn(2).getBytes() == bytes);
  CHECK_FALSE(read.executeStep());
}

TEST_CASE("PgStore: after a server restart the next entry point connects again", "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  REQUIRE(store->guarded("before", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("a"));
  }) == core::SqlStore::Outcome::kDone);
  REQUIRE(store->commit().ok());

  server.restart();
  // The old connection is gone: reading it says so, as busy (retry later),
  // never as a crash; the next try has a new connection.
  std::vector<core::SqlStore::Outcome> outcomes;
  for (int attempt = 0; attempt < 2; ++attempt) {
    outcomes.push_back(store->guarded("after", [&] {
      store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{2}, std::string("b"));
    }));
    if (outcomes.back() == core::SqlStore::Outcome::kDone) break;
  }
  INFO(outcomes.size());
  CHECK(outcomes.back() == core::SqlStore::Outcome::kDone);
  CHECK((outcomes.front() == core::SqlStore::Outcome::kDone ||
         outcomes.front() == core::SqlStore::Outcome::kBusy));
  REQUIRE(store->commit().ok());
  CHECK(count_rows(*store) == 2);
  CHECK(store->connections_made() == 2);
}

TEST_CASE(
    "PgStore: a connection lost with statements queued on it loses the entry point as busy; "
    "the next one connects again",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  bool acked = false;
  auto insert_later = [&](int64_t id) {
    store->execute_later("INSERT INTO items (id, name) VALUES (?, ?)", id, std::string("x"));
  };
  auto queued = [&] {
    insert_later(1);  // queued with its savepoint
    store->after_commit([&] { acked = true; });
    server.restart();  // the connection dies with them unsent
    insert_later(2);
  };  // sent at the end: on a dead connection
  CHECK(store->guarded("queued", queued) == core::SqlStore::Outcome::kBusy);
  std::vector<core::SqlStore::Outcome> outcomes;
  for (int attempt = 0; attempt < 2; ++attempt) {
    outcomes.push_back(store->guarded("after", [&] { insert_later(3); }));
    if (outcomes.back() == core::SqlStore::Outcome::kDone) break;
  }
  CHECK(outcomes.back() == core::SqlStore::Outcome::kDone);
  REQUIRE(store->commit().ok());
  CHECK_FALSE(acked);
  CHECK(server.psql("SELECT id FROM items ORDER BY id") == "3\n");
  CHECK(store->connections_made() == 2);
}

TEST_CASE(
    "PgStore: a connection lost inside a turn's transaction loses that turn, never "
    "commits half of it on a new connection",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  std::vector<std::string> failures;
  store->set_on_commit_failed([&](const Error& error) { failures.push_back(error.message); });
  bool acked = false;
  REQUIRE(store->guarded("first", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("a"));
    store->after_commit([&] { acked = true; });
  }) == core::SqlStore::Outcome::kDone);
  // The server ends the store's session (as a restart or a failover would).
  server.psql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE application_name = 'tether'");
  // The rest of the turn cannot go to a new connection: busy, and the turn
  // is reported lost; the first write's action never runs.
  auto second = store->guarded("second", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{2}, std::string("b"));
  });
  CHECK(second == core::SqlStore::Outcome::kBusy);
  CHECK(store->commit().ok());  // nothing left to commit: the turn is gone
  CHECK_FALSE(acked);
  REQUIRE(failures.size() == 1);
  CHECK_THAT(failures[0], Catch::Contains("transaction lost"));
  CHECK(server.psql("SELECT count(*) FROM items") == "0\n");
  // The next turn connects again and commits.
  REQUIRE(store->guarded("third", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{3}, std::string("c"));
    store->after_commit([&] { acked = true; });
  }) == core::SqlStore::Outcome::kDone);
  REQUIRE(store->commit().ok());
  CHECK(acked);
  CHECK(server.psql("SELECT id FROM items") == "3\n");

  // Work that goes on after a failed statement (no guarded() around it)
  // still meets the lost transaction, not a new connection that would
  // commit each statement on its own.
  store->begin_write();
  store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{4}, std::string("d"));
  server.psql(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE application_name = 'tether'");
  CHECK_THROWS(
      store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{5}, std::string("e")));
  CHECK_THROWS(
      store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{6}, std::string("f")));
  CHECK_FALSE(store->commit().ok());
  CHECK(server.psql("SELECT id FROM items ORDER BY id") == "3\n");
}

TEST_CASE(
    "PgStore: an entry point that broke the transaction fails even if it caught the error, or "
    "threw before any statement; the others keep their writes and actions",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  std::vector<std::string> done;
  auto insert = [&](int64_t id) {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", id, std::string("x"));
  };
  auto first = [&] {
    insert(1);
    store->after_commit([&] { done.push_back("first"); });
  };
  // Its savepoint and RELEASE travel with other statements: the RELEASE
  // must still not pass for an entry point whose statement failed.
  auto swallowed = [&] {
    insert(2);
    store->after_commit([&] { done.push_back("swallowed"); });
    try {
      insert(1);
    } catch (const core::SqlError&) {
    }
  };
  auto early = [&] {
    store->begin_write();
    store->after_commit([&] { done.push_back("early"); });
    throw std::runtime_error("broke before its first statement");
  };
  auto last = [&] {
    insert(3);
    store->after_commit([&] { done.push_back("last"); });
  };
  CHECK(store->guarded("first", first) == core::SqlStore::Outcome::kDone);
  CHECK(store->guarded("swallowed", swallowed) == core::SqlStore::Outcome::kFailed);
  CHECK(store->guarded("early", early) == core::SqlStore::Outcome::kFailed);
  CHECK(store->guarded("last", last) == core::SqlStore::Outcome::kDone);
  REQUIRE(store->commit().ok());
  CHECK(done == std::vector<std::string>{"first", "last"});
  CHECK(server.psql("SELECT id FROM items ORDER BY id") == "1\n3\n");
}

TEST_CASE(
    "PgStore: a write queued with execute_later is read by the next statement, fails its own "
    "entry point, and is committed with the turn",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  std::vector<std::string> done;
  auto queue = [&](int64_t id) {
    store->execute_later("INSERT INTO items (id, name) VALUES (?, ?)", id, std::string("x"));
  };
  auto first = [&] {
    queue(1);
    queue(2);
    // The read goes after the queued writes: it sees them.
    CHECK(count_rows(*store) == 2);
    queue(3);  // last of the entry point: sent at its end
    store->after_commit([&] { done.push_back("first"); });
  };
  auto duplicate = [&] {
    queue(4);
    store->after_commit([&] { done.push_back("duplicate"); });
    queue(1);  // refused (unique id) when the entry point ends: its failure
  };
  auto thrown = [&] {
    queue(5);  // never sent: the entry point fails before it ends
    store->after_commit([&] { done.push_back("thrown"); });
    throw std::runtime_error("broke with a write queued");
  };
  CHECK(store->guarded("first", first) == core::SqlStore::Outcome::kDone);
  CHECK(store->guarded("duplicate", duplicate) == core::SqlStore::Outcome::kFailed);
  CHECK(store->guarded("thrown", thrown) == core::SqlStore::Outcome::kFailed);
  // Outside any entry point: it goes with the COMMIT.
  queue(6);
  REQUIRE(store->commit().ok());
  CHECK(done == std::vector<std::string>{"first"});
  CHECK(server.psql("SELECT id FROM items ORDER BY id") == "1\n2\n3\n6\n");
  // A queued write that fails makes the COMMIT fail: nothing of the turn stays.
  store->begin_write();
  store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{7}, std::string("y"));
  queue(2);
  CHECK_FALSE(store->commit().ok());
  CHECK(server.psql("SELECT count(*) FROM items") == "4\n");
}

TEST_CASE(
    "PgStore: BEGIN goes with the transaction's first statement; an entry point that fails "
    "before any leaves the transaction open for the next",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  const char* kState = "SELECT state FROM pg_stat_activity WHERE application_name = 'tether'";
  store->begin_write();
  CHECK(store->in_transaction());
  CHECK(server.psql(kState) == "idle\n");  // nothing sent yet
  store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("a"));
  CHECK(server.psql(kState) == "idle in transaction\n");
  REQUIRE(store->commit().ok());
  CHECK(server.psql(kState) == "idle\n");

  // The turn's first entry point opens the transaction and throws before
  // its first statement: its savepoint takes it back, the transaction stays.
  bool acked = false;
  CHECK(store->guarded("thrown first", [&] {
    store->begin_write();
    store->after_commit([&] { acked = true; });
    throw std::runtime_error("fails before any statement");
  }) == core::SqlStore::Outcome::kFailed);
  CHECK(store->in_transaction());
  CHECK(store->guarded("second", [&] {
    store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{2}, std::string("b"));
  }) == core::SqlStore::Outcome::kDone);
  REQUIRE(store->commit().ok());
  CHECK_FALSE(acked);
  CHECK(server.psql("SELECT id FROM items ORDER BY id") == "1\n2\n");

  // Opened outside any entry point, nothing sent: one that fails without
  // writing (no savepoint) does not take the transaction for lost.
  store->begin_write();
  CHECK(store->guarded("fails without writing", [] {
    throw std::runtime_error("fails before any statement");
  }) == core::SqlStore::Outcome::kFailed);
  CHECK(store->in_transaction());
  store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{3}, std::string("c"));
  REQUIRE(store->commit().ok());
  CHECK(server.psql("SELECT id FROM items ORDER BY id") == "1\n2\n3\n");
}

TEST_CASE(
    "PgStore: a write queued for its row goes with the next statement or at the entry point's "
    "end, and answers only then; one of a failed entry point never answers",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigserial PRIMARY KEY, name text UNIQUE)");
  auto store = open_store(server);
  const char* kState = "SELECT state FROM pg_stat_activity WHERE application_name = 'tether'";
  std::vector<std::string> answered;
  auto queue = [&](const std::string& name) {
    auto insert = store->query("INSERT INTO items (name) VALUES (?) RETURNING id, name");
    insert.bind(1, name);
    insert.exec_later([&](core::SqlRow& row) {
      answered.push_back(std::to_string(row.int64(0)) + " " + row.text(1));
    });
  };
  CHECK(store->guarded("two inserts", [&] {
    queue("a");
    queue("b");
    CHECK(answered.empty());
    CHECK(server.psql(kState) == "idle\n");  // nothing sent, not even the BEGIN
  }) == core::SqlStore::Outcome::kDone);
  CHECK(answered == std::vector<std::string>{"1 a", "2 b"});
  CHECK(store->guarded("insert, then read", [&] {
    queue("c");
    CHECK(count_rows(*store) == 3);  // sent ahead of the read
    CHECK(answered.size() == 3);
  }) == core::SqlStore::Outcome::kDone);
  // The second insert fails (a name twice): the first one's row is never
  // handed over, and neither is kept.
  CHECK(store->guarded("a name twice", [&] {
    queue("d");
    queue("a");
  }) == core::SqlStore::Outcome::kFailed);
  CHECK(answered.size() == 3);
  store->begin_write();
  queue("e");
  CHECK(answered.size() == 3);
  store->send_queued();
  REQUIRE(answered.size() == 4);
  CHECK(answered.back().ends_with(" e"));
  REQUIRE(store->commit().ok());
  CHECK(server.psql("SELECT name FROM items ORDER BY id") == "a\nb\nc\ne\n");
}

TEST_CASE("PgStore: COMMIT of a transaction an error aborted fails; its actions do not run",
          "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  auto store = open_store(server);
  bool acked = false;
  store->begin_write();
  store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("a"));
  store->after_commit([&] { acked = true; });
  // Outside guarded(): no savepoint takes the error back.
  CHECK_THROWS(store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1},
                              std::string("again")));
  auto committed = store->commit();
  CHECK_FALSE(committed.ok());
  CHECK_FALSE(acked);
  CHECK(server.psql("SELECT count(*) FROM items") == "0\n");
}

TEST_CASE(
    "PgStore: while the server is down, a failed connect is not tried again per "
    "statement",
    "[postgres]") {
  TestPostgres server;
  server.psql("CREATE TABLE items (id bigint PRIMARY KEY, name text, data bytea)");
  core::PgStore::Options options;
  options.settings.uri = server.url();
  options.settings.password = server.password();
  options.reconnect_backoff_ms = 600'000;  // longer than this test
  auto opened = core::PgStore::open(options);
  REQUIRE(opened.ok());
  auto store = std::move(*opened);
  server.stop();
  auto insert = [&] {
    return store->guarded("insert", [&] {
      store->execute("INSERT INTO items (id, name) VALUES (?, ?)", int64_t{1}, std::string("a"));
    });
  };
  // The dead connection, then one connect that fails, then none: each
  // statement fails at once as busy.
  for (int attempt = 0; attempt < 5; ++attempt)
    CHECK(insert() == core::SqlStore::Outcome::kBusy);
  CHECK(store->reconnects_tried() == 1);
  CHECK(store->connections_made() == 1);
  server.start_again();
}

}  // namespace tether::test
