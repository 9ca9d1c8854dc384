// core's PostgreSQL client (pg_connection, pg_schema, pg_listener) against
// a real postgresql-15 server (TestPostgres), written from libpq's and
// PostgreSQL's documentation: connection URIs and passwords, values in text
// and bytea form, SQLSTATE classes, LISTEN/NOTIFY, a server restart.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/notification.hpp"
#include "core/pg_connection.hpp"
#include "core/pg_listener.hpp"
#include "core/pg_schema.hpp"
#include "core/run.hpp"
#include "test_postgres.hpp"

namespace tether::test {
namespace {

core::PgSettings settings_of(const TestPostgres& server) {
  core::PgSettings settings;
  settings.uri = server.url();
  settings.password = server.password();
  return settings;
}

std::unique_ptr<core::PgConnection> connect(const TestPostgres& server) {
  auto connection = core::PgConnection::connect(settings_of(server));
  INFO((connection ? std::string() : connection.error().message));
  REQUIRE(connection.ok());
  return std::move(*connection);
}

}  // namespace

TEST_CASE("PostgreSQL URIs: a password in the URI is refused, naming the setting", "[postgres]") {
  auto refused =
      core::check_pg_uri("postgresql://tether:secret@127.0.0.1:5432/tether", "--database");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == Errc::kInvalid);
  CHECK(refused.error().message.find("--database") == 0);
  CHECK(refused.error().message.find("secret") == std::string::npos);
  auto as_parameter = core::check_pg_uri("postgresql://127.0.0.1/tether?password=x", "--database");
  CHECK_FALSE(as_parameter.ok());
  auto not_uri = core::check_pg_uri("host=127.0.0.1 dbname=tether", "--database");
  REQUIRE_FALSE(not_uri.ok());
  CHECK(not_uri.error().message.find("postgresql://") != std::string::npos);
  auto bad = core::check_pg_uri("postgresql://127.0.0.1/tether?no_such_option=1", "--database");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("no_such_option") != std::string::npos);
  CHECK(core::check_pg_uri("postgresql://tether@127.0.0.1:5432/tether?sslmode=verify-full",
                           "--database")
            .ok());
}

TEST_CASE("PostgreSQL connections: the password decides, errors are kinds", "[postgres]") {
  TestPostgres server;
  auto connection = connect(server);
  CHECK(connection->server_pid() > 0);

  core::PgSettings wrong = settings_of(server);
  wrong.password = "not-the-password";
  auto refused = core::PgConnection::connect(wrong);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == Errc::kUnauthorized);
  CHECK(refused.error().message.find("not-the-password") == std::string::npos);

  core::PgSettings nobody_listens = settings_of(server);
  nobody_listens.uri = "postgresql://tether@127.0.0.1:1/tether";
  auto unreachable = core::PgConnection::connect(nobody_listens);
  REQUIRE_FALSE(unreachable.ok());
  CHECK(unreachable.error().kind == Errc::kUnreachable);

  auto syntax = connection->execute("SELEKT 1");
  REQUIRE_FALSE(syntax.ok());
  CHECK(syntax.error().kind == Errc::kIo);
  CHECK(syntax.error().message.find("42601") != std::string::npos);  // syntax_error

  REQUIRE(connection->execute_script("CREATE TABLE names (name text PRIMARY KEY)").ok());
  const core::PgParam name = core::PgParam::text("edge-1");
  REQUIRE(connection->execute("INSERT INTO names VALUES ($1)", {&name, 1}).ok());
  auto twice = connection->execute("INSERT INTO names VALUES ($1)", {&name, 1});
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().kind == Errc::kExists);
}

TEST_CASE(
    "PostgreSQL queued statements run ahead of the next call, in order; a failing one is that "
    "call's error and its statement does not run",
    "[postgres]") {
  TestPostgres server;
  auto connection = connect(server);
  auto watcher = connect(server);
  REQUIRE(connection->execute_script("CREATE TABLE v (id bigint)").ok());
  auto count = [&] { return connection->execute("SELECT count(*) FROM v")->int64(0, 0); };
  const core::PgParam one = core::PgParam::text("1");

  // Nothing is sent until the next call.
  connection->defer("SET application_name = 'queued'");
  CHECK(connection->deferred() == 1);
  const std::string pid = std::to_string(connection->server_pid());
  auto name_seen = [&] {
    return std::string(
        watcher->execute("SELECT application_name FROM pg_stat_activity WHERE pid = " + pid)
            ->text(0, 0));
  };
  CHECK(name_seen() != "queued");
  CHECK(count() == 0);
  CHECK(connection->deferred() == 0);
  CHECK(name_seen() == "queued");

  // Ahead of a statement: the savepoint is there before the insert.
  REQUIRE(connection->execute_script("BEGIN").ok());
  connection->defer("SAVEPOINT before_insert");
  REQUIRE(connection->execute("INSERT INTO v VALUES ($1)", {&one, 1}).ok());
  REQUIRE(connection->execute_script("ROLLBACK TO before_insert").ok());
  CHECK(count() == 0);
  // Ahead of a prepared statement and of a script, in order.
  REQUIRE(connection->prepare("insert_v", "INSERT INTO v VALUES ($1)").ok());
  connection->defer("RELEASE before_insert");
  connection->defer("SAVEPOINT second");
  REQUIRE(connection->execute_prepared("insert_v", {&one, 1}).ok());
  connection->defer("RELEASE second");
  connection->defer("SAVEPOINT third");
  REQUIRE(connection->execute_script("ROLLBACK TO third").ok());
  CHECK(count() == 1);

  // A queued statement that fails: the call says which and why, its own
  // statement did not run, and the connection is usable after a ROLLBACK.
  connection->defer("RELEASE no_such_savepoint");
  auto refused = connection->execute_prepared("insert_v", {&one, 1});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == Errc::kIo);
  CHECK_THAT(refused.error().message,
             Catch::Contains("3B001") && Catch::Contains("queued RELEASE no_such_savepoint"));
  CHECK(connection->transaction_failed());
  REQUIRE(connection->execute_script("ROLLBACK").ok());
  CHECK(count() == 0);
  CHECK_FALSE(connection->connection_lost());

  // Prepared statements with parameters, sent by flush or ahead of a
  // script (one statement then: the pipeline takes no other).
  REQUIRE(connection->execute_script("BEGIN").ok());
  connection->defer_prepared("insert_v", {one});
  connection->defer_prepared("insert_v", {core::PgParam::text("2")});
  REQUIRE(connection->flush().ok());
  CHECK(connection->deferred() == 0);
  connection->defer_prepared("insert_v", {core::PgParam::text("3")});
  REQUIRE(connection->execute_script("COMMIT").ok());
  CHECK(connection->execute("SELECT string_agg(id::text, ',' ORDER BY id) FROM v")->text(0, 0) ==
        "1,2,3");
  // A refused one fails the flush, naming it; the script after it is skipped.
  REQUIRE(connection->execute_script("BEGIN").ok());
  connection->defer_prepared("insert_v", {core::PgParam::text("not a number")});
  auto flushed = connection->flush();
  REQUIRE_FALSE(flushed.ok());
  CHECK_THAT(flushed.error().message,
             Catch::Contains("22P02") && Catch::Contains("queued insert_v"));
  REQUIRE(connection->execute_script("ROLLBACK").ok());
  CHECK(count() == 3);
}

TEST_CASE("PostgreSQL values: NULL, 64-bit integers, UTF-8 text and every byte", "[postgres]") {
  TestPostgres server;
  auto connection = connect(server);
  REQUIRE(
      connection->execute_script("CREATE TABLE v (id bigint, note text, data bytea, maybe text)")
          .ok());
  std::string every_byte;
  for (int i = 0; i < 256; ++i)
    every_byte.push_back(static_cast<char>(i));
  const core::PgParam params[] = {core::PgParam::text(std::to_string(INT64_MIN)),
                                  core::PgParam::text("h\xc3\xa9llo 'quoted' \\ $1"),
                                  core::PgParam::bytes(every_byte), core::PgParam::null()};
  auto inserted = connection->execute("INSERT INTO v VALUES ($1, $2, $3, $4)", params);
  REQUIRE(inserted.ok());
  CHECK(inserted->changed_rows() == 1);
  const core::PgParam max = core::PgParam::text(std::to_string(INT64_MAX));
  REQUIRE(connection->execute("INSERT INTO v (id) VALUES ($1)", {&max, 1}).ok());

  auto rows = connection->execute("SELECT id, note, data, maybe FROM v ORDER BY id");
  REQUIRE(rows.ok());
  REQUIRE(rows->rows() == 2);
  CHECK(rows->int64(0, 0) == INT64_MIN);
  CHECK(rows->text(0, 1) == "h\xc3\xa9llo 'quoted' \\ $1");
  CHECK(rows->bytes(0, 2) == every_byte);
  CHECK(rows->is_null(0, 3));
  CHECK(rows->int64(1, 0) == INT64_MAX);
  CHECK(rows->is_null(1, 2));
  CHECK(rows->bytes(1, 2).empty());
  CHECK_THROWS_AS(rows->int64(0, 1), std::logic_error);  // text is not an integer
  CHECK_THROWS_AS(rows->text(2, 0), std::logic_error);   // no third row
}

TEST_CASE("PostgreSQL notices go to the log as one line, not raw to stderr", "[postgres]") {
  TestPostgres server;
  auto connection = connect(server);
  TempDir dir;
  const std::string captured = dir.path() + "/stderr";
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int file = ::open(captured.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(file >= 0);
  ::dup2(file, 2);
  auto raised =
      connection->execute_script("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$");
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(file);
  REQUIRE(raised.ok());
  std::stringstream read;
  read << std::ifstream(captured).rdbuf();
  const std::string text = read.str();
  INFO(text);
  CHECK(text.find(" WARN postgresql: NOTICE:  hello from the server\n") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
}

TEST_CASE("PostgreSQL schema: created once, upgraded in order, a newer one refused", "[postgres]") {
  TestPostgres server;
  static constexpr const char* kSchema = "CREATE TABLE tasks (id text PRIMARY KEY);";
  static constexpr const char* kUpgrades[] = {
      "ALTER TABLE tasks ADD COLUMN state text NOT NULL DEFAULT 'queued';",
      "CREATE INDEX tasks_state ON tasks (state);"};

  // Two processes starting together against a new database: the schema
  // (which would fail if run twice) is created once, both succeed.
  Result<void> first = Error{}, second = Error{};
  {
    auto a = connect(server);
    auto b = connect(server);
    std::thread one([&] { first = core::apply_pg_schema(*a, kSchema, 1); });
    std::thread two([&] { second = core::apply_pg_schema(*b, kSchema, 1); });
    one.join();
    two.join();
  }
  INFO((first ? "" : first.error().message) << (second ? "" : second.error().message));
  REQUIRE(first.ok());
  REQUIRE(second.ok());

  auto connection = connect(server);
  REQUIRE(core::pg_schema_version(*connection).value() == 1);
  REQUIRE(core::apply_pg_schema(*connection, kSchema, 3, kUpgrades).ok());
  CHECK(core::pg_schema_version(*connection).value() == 3);
  CHECK(server.psql("SELECT indexname FROM pg_indexes WHERE indexname = 'tasks_state'") ==
        "tasks_state\n");

  // An older program refuses the database and changes nothing.
  server.psql("INSERT INTO tasks (id) VALUES ('t-1')");
  auto older = core::apply_pg_schema(*connection, kSchema, 2, kUpgrades);
  REQUIRE_FALSE(older.ok());
  CHECK(older.error().code == "schema_too_new");
  CHECK(older.error().message.find("version 3") != std::string::npos);
  CHECK(server.psql("SELECT version FROM schema_version") == "3\n");
  CHECK(server.psql("SELECT id, state FROM tasks") == "t-1|queued\n");

  // A failing upgrade rolls everything back, the version included.
  static constexpr const char* kBroken[] = {kUpgrades[0], kUpgrades[1],
                                            "ALTER TABLE nope ADD x int"};
  auto broken = core::apply_pg_schema(*connection, kSchema, 4, kBroken);
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().message.find("from version 3") != std::string::npos);
  CHECK(server.psql("SELECT version FROM schema_version") == "3\n");
}

TEST_CASE("PostgreSQL notifications reach the loop; a restart is reported as lost", "[postgres]") {
  TestPostgres server;
  core::Loop loop;
  auto sender = connect(server);
  std::vector<core::PgNotification> received;
  std::optional<Error> lost;
  core::Notification changed(loop);
  auto listened = core::PgListener::start(
      loop, connect(server), {"task_queued", "output_stored"},
      [&](const core::PgNotification& notification) {
        received.push_back(notification);
        changed.notify_all();
      },
      [&](const Error& error) {
        lost = error;
        changed.notify_all();
      });
  REQUIRE(listened.ok());
  std::unique_ptr<core::PgListener> listener = std::move(*listened);
  CHECK_FALSE(core::PgListener::start(loop, connect(server), {"Bad-Name"}, {}, {}).ok());

  auto steps = [&]() -> core::Co<void> {
    // Two notifications in one transaction arrive in order, at commit.
    REQUIRE(sender
                ->execute_script("BEGIN; NOTIFY task_queued, 't-1'; NOTIFY output_stored, "
                                 "'t-1:stdout'; NOTIFY unrelated, 'x'; COMMIT;")
                .ok());
    while (received.size() < 2) {
      const bool woke = co_await changed.wait(10000);
      REQUIRE(woke);
    }
    REQUIRE(received.size() == 2);
    CHECK(received[0].channel == "task_queued");
    CHECK(received[0].payload == "t-1");
    CHECK(received[1].channel == "output_stored");
    CHECK(received[1].sender_pid == sender->server_pid());

    server.restart();
    while (!lost) {
      const bool woke = co_await changed.wait(30000);
      REQUIRE(woke);
    }
    CHECK(lost->kind == Errc::kUnreachable);
    CHECK(listener->lost());
    listener.reset();
    // The old connection is gone too; a new one works.
    CHECK_FALSE(sender->execute("SELECT 1").ok());
    CHECK(sender->connection_lost());
    CHECK(connect(server)->execute("SELECT 1").ok());
  };
  // The listener's watch keeps the loop running: end it after a failure too.
  run_with_cleanup(loop, steps, [&] { listener.reset(); });
}

}  // namespace tether::test
