// Several hubs on one PostgreSQL database, as the hub's parts see it (the
// parts Hub assembles, two sets in this process, each on its own
// connection): what must happen once across hubs happens once. Each "turn"
// is committed by hand, as a hub's loop would at the end of the turn; a turn
// left open is a hub in the middle of its turn while the other runs.
#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/co.hpp"
#include "core/loop.hpp"
#include "core/notification.hpp"
#include "core/run.hpp"

#include "hub/lease_keeper.hpp"
#include "hub/peer_bus.hpp"
#include "hub/pg_hub_schema.hpp"
#include "hub_wiring.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/sha256.hpp"
#include "test_postgres.hpp"

namespace tether::test {
namespace {

// One hub's connection to the shared database, made before its parts.
struct PgHubStore {
  explicit PgHubStore(const TestPostgres& server) : store(open(server)) {}

  static core::PgSettings settings_of(const TestPostgres& server) {
    core::PgSettings settings;
    settings.uri = server.url();
    settings.password = server.password();
    return settings;
  }
  static std::unique_ptr<core::PgStore> open(const TestPostgres& server) {
    auto store = hub::open_pg_hub_store(settings_of(server));
    INFO((store ? std::string() : store.error().message));
    REQUIRE(store.ok());
    return std::move(*store);
  }

  std::unique_ptr<core::PgStore> store;
};

// One hub's parts on the shared database (no loop: turns commit by hand).
struct PeerHub : PgHubStore, HubWiring {
  explicit PeerHub(const TestPostgres& server) : PgHubStore(server), HubWiring(*store) {}

  void commit() { REQUIRE(store->commit().ok()); }
};

// A PeerHub that hears the others through its PeerBus, recording what it is
// told; `heard` is notified on each notice acted on.
struct ListeningHub : PeerHub {
  ListeningHub(core::Loop& loop, const TestPostgres& server)
      : PeerHub(server),
        heard(loop),
        bus(loop, *store, settings_of(server), events, viewers, handlers()) {
    auto started = bus.start();
    INFO((started ? std::string() : started.error().message));
    REQUIRE(started.ok());
    transitions.set_peers(&bus);
  }
  hub::PeerBus::Handlers handlers() {
    hub::PeerBus::Handlers handlers;
    handlers.wake = [this](const std::string& agent) {
      wakes.push_back(agent);
      heard.notify_all();
    };
    handlers.cancel = [this](const std::string& agent, const protocol::TaskCancel& cancel) {
      cancels.push_back(agent + " " + cancel.attempt.task_id + " " + cancel.attempt.attempt_id +
                        " " + cancel.reason);
      heard.notify_all();
    };
    handlers.lost = [this] {
      ++lost;
      heard.notify_all();
    };
    return handlers;
  }
  // Awaits `done`, failing after 20 s without it.
  core::Co<void> until(const std::function<bool()>& done) {
    while (!done()) {
      const bool woke = co_await heard.wait(20000);
      REQUIRE(woke);
    }
  }

  std::vector<std::string> wakes;
  std::vector<std::string> cancels;
  int lost = 0;
  core::Notification heard;
  hub::PeerBus bus;
};

// `work`, then the hub's commit, on a thread of its own, while another
// hub's turn is open on this one: whether it waits for a lock that turn holds.
class TurnOnItsOwnThread {
 public:
  TurnOnItsOwnThread(PeerHub& hub, std::function<void()> work)
      : thread_([this, &hub, work = std::move(work)] {
          try {
            work();
            if (!hub.store->commit().ok()) failure_ = "commit failed";
          } catch (const std::exception& e) {
            failure_ = e.what();
          }
          done_ = true;
        }) {}
  // Until the turn has committed (false) or waits for a lock (pg_locks: true).
  bool waits(const TestPostgres& server) {
    while (!done_) {
      if (server.psql("SELECT count(*) FROM pg_locks WHERE NOT granted") != "0\n") return true;
    }
    return false;
  }
  // What failed in the turn ("" when it committed).
  std::string join() {
    thread_.join();
    return failure_;
  }

 private:
  std::atomic<bool> done_ = false;
  std::string failure_;
  std::thread thread_;  // last: it uses the members above
};

std::string submit(PeerHub& hub, const std::string& agent, const std::string& selector = "") {
  protocol::SubmitRequest request;
  request.agent = agent;
  request.selector = selector;
  request.spec.argv = {"true"};
  auto task = hub.dispatch.submit(request);
  REQUIRE(task.ok());
  hub.commit();
  return task->id;
}

}  // namespace

TEST_CASE(
    "Two hubs on one database: a task is dispatched once, the other hub passes over it while "
    "the first one's turn is open",
    "[postgres][peers]") {
  TestPostgres server;
  PeerHub a(server);
  PeerHub b(server);
  a.agents.add("edge-1", protocol::sha256_hex("token-1"), {{"role", "web"}});
  a.agents.add("edge-2", protocol::sha256_hex("token-2"), {{"role", "web"}});
  a.commit();

  SECTION("the agent's own task, the agent polling on both hubs") {
    const auto task_id = submit(b, "edge-1");
    auto on_a = a.dispatch.dispatch_next("edge-1", "i-1");  // A's turn stays open
    REQUIRE(on_a.has_value());
    CHECK(on_a->task_id == task_id);
    // Without the row lock B would dispatch it too (or wait for A's turn).
    CHECK_FALSE(b.dispatch.dispatch_next("edge-1", "i-1").has_value());
    b.commit();
    a.commit();
    CHECK_FALSE(b.dispatch.dispatch_next("edge-1", "i-1").has_value());
    b.commit();
  }
  SECTION("a pool task, a matching agent polling on each hub") {
    const auto task_id = submit(a, "", "role=web");
    auto on_b = b.dispatch.dispatch_next("edge-2", "i-2");
    REQUIRE(on_b.has_value());
    CHECK(on_b->task_id == task_id);
    CHECK_FALSE(a.dispatch.dispatch_next("edge-1", "i-1").has_value());
    a.commit();
    b.commit();
    CHECK_FALSE(a.dispatch.dispatch_next("edge-1", "i-1").has_value());
    a.commit();
    CHECK(server.psql("SELECT agent, state FROM tasks WHERE id = '" + task_id + "'") ==
          "edge-2|dispatched\n");
  }
  SECTION("a task the other hub's open turn holds keeps its target: no conflicting task goes") {
    protocol::SubmitRequest first;
    first.agent = "edge-1";
    first.spec.argv = {"true"};
    first.spec.target = "app";
    REQUIRE(a.dispatch.submit(first).ok());
    auto second = first;
    second.spec.target = "app/web";
    REQUIRE(a.dispatch.submit(second).ok());
    a.commit();
    REQUIRE(a.dispatch.dispatch_next("edge-1", "i-1").has_value());
    CHECK_FALSE(b.dispatch.dispatch_next("edge-1", "i-1").has_value());
    b.commit();
    a.commit();
  }
  CHECK(server.psql("SELECT count(*) FROM attempts") == "1\n");
}

TEST_CASE(
    "Two hubs on one database hear each other: wakes, cancels and events cross at commit, "
    "events in id order; a PostgreSQL restart is survived",
    "[postgres][peers]") {
  TestPostgres server;
  core::Loop loop;
  auto a = std::make_unique<ListeningHub>(loop, server);
  auto b = std::make_unique<ListeningHub>(loop, server);
  a->agents.add("edge-1", protocol::sha256_hex("token-1"), {});
  a->commit();
  // Viewers of one task on A: every event they get, in order.
  std::vector<uint64_t> seen;
  std::string task_id;

  auto steps = [&]() -> core::Co<void> {
    // A task queued on B wakes A, once; B acted on its own wake already.
    task_id = submit(*b, "edge-1");
    co_await a->until([&] { return !a->wakes.empty(); });
    CHECK(a->wakes == std::vector<std::string>{"edge-1"});
    a->viewers.subscribe(task_id, [&](const std::shared_ptr<const hub::StoredEvent>& event) {
      seen.push_back(event->id);
      a->heard.notify_all();
    });

    // Output stored on B, then on A, then on B again: A's viewer gets all
    // three, in id order, its own one included (through its notice).
    auto on_a = a->dispatch.dispatch_next("edge-1", "i-1");
    REQUIRE(on_a.has_value());
    a->commit();
    const std::string attempt_id = on_a->attempt_id;
    auto output = [&](ListeningHub& hub, uint64_t seq) {
      protocol::OutputChunk chunk;
      chunk.seq = seq;
      chunk.offset = seq * 2;
      chunk.data = "x\n";
      hub.transitions.publish_after_commit(hub.events.append_output(task_id, attempt_id, chunk));
      hub.commit();
    };
    output(*b, 0);
    output(*a, 1);
    output(*b, 2);
    co_await a->until([&] { return seen.size() >= 4; });  // the dispatch's status, then 3
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    CHECK(seen.size() == 4);

    // A cancel on B reaches A (which would hold the agent's channel).
    REQUIRE(b->dispatch.cancel(task_id, "operator said stop").ok());
    b->commit();
    co_await a->until([&] { return !a->cancels.empty(); });
    CHECK(a->cancels ==
          std::vector<std::string>{"edge-1 " + task_id + " " + attempt_id + " operator said stop"});
    CHECK(b->cancels.empty());

    // A restart: both hear it (lost), listen again (lost once more), and a
    // task queued on A then wakes B.
    server.restart();
    co_await b->until([&] { return b->lost >= 2; });
    co_await a->until([&] { return a->lost >= 2; });
    CHECK(b->bus.connections() == 2);
    b->wakes.clear();
    // A's store finds its connection lost at its next statement, then connects again.
    for (int i = 0; i < 3; ++i) {
      auto probe = [&] { a->store->query("SELECT 1").executeStep(); };
      if (a->store->guarded("probe", probe) == core::SqlStore::Outcome::kDone) break;
    }
    submit(*a, "edge-1");
    co_await b->until([&] { return !b->wakes.empty(); });
    CHECK(b->wakes == std::vector<std::string>{"edge-1"});
  };
  // The listeners' watches keep the loop running: end them after a failure too.
  run_with_cleanup(loop, steps, [&] {
    a.reset();
    b.reset();
  });
}

TEST_CASE(
    "Two hubs on one database: an event of a task waits for the other hub's open turn holding "
    "one, so ids follow commit order",
    "[postgres][peers]") {
  TestPostgres server;
  PeerHub a(server);
  PeerHub b(server);
  a.agents.add("edge-1", protocol::sha256_hex("token-1"), {});
  a.commit();
  const auto task_id = submit(a, "edge-1");
  const auto first = a.events.append_status(task_id, "", "note", "{}");
  a.store->send_queued();  // as at the end of an entry point: A's turn stays open
  uint64_t b_id = 0;
  auto b_turn = [&] {
    const auto event = b.events.append_status(task_id, "", "note", "{}");
    b.store->send_queued();
    b_id = event->id;
  };
  TurnOnItsOwnThread writer(b, b_turn);
  // B either finishes (no ordering lock: the bug) or waits for the lock.
  CHECK(writer.waits(server));
  a.commit();
  CHECK(writer.join().empty());
  CHECK(b_id > first->id);
  CHECK(server.psql("SELECT count(*) FROM events WHERE task_id = '" + task_id +
                    "' AND state = 'note'") == "2\n");
}

namespace {
// The leases' clock in the next test: the wall clock, moved on by hand.
int64_t g_now_ms = 0;
int64_t test_clock() {
  return g_now_ms;
}
}  // namespace

TEST_CASE("Two hubs on one database decide a lease once, and on when either of them saw the agent",
          "[postgres][peers]") {
  TestPostgres server;
  g_now_ms = hub::wall_clock_ms();
  PeerHub a(server);
  PeerHub b(server);
  constexpr int64_t kLeaseMs = 60'000;
  hub::LeaseKeeper a_leases(a.tasks, a.transitions, a.agents, kLeaseMs, &test_clock);
  hub::LeaseKeeper b_leases(b.tasks, b.transitions, b.agents, kLeaseMs, &test_clock);
  // Without the claim B would wait for A's row lock: make that a failure.
  b.store->execute("SET lock_timeout = '3s'");
  b.commit();
  a.agents.add("edge-1", protocol::sha256_hex("token-1"), {});
  a.commit();
  const auto task_id = submit(a, "edge-1");
  auto attempt = a.dispatch.dispatch_next("edge-1", "i-1");
  REQUIRE(attempt.has_value());
  a.commit();
  const auto lost = [&] {
    return server.psql("SELECT count(*) FROM attempts WHERE state = 'lost'");
  };
  // One hub's lease check, as its timer runs it; its turn is left open.
  const auto check = [](PeerHub& hub, hub::LeaseKeeper& leases) {
    return hub.store->guarded("leases", [&] { leases.check_leases(); }) ==
           core::SqlStore::Outcome::kDone;
  };

  SECTION("a running attempt's agent, seen only by A, is not lost on B while A saw it") {
    a.tasks.mark_attempt_running(attempt->attempt_id, 42, "2026-12-02T00:00:00Z");
    a_leases.agent_seen("edge-1");
    CHECK(check(a, a_leases));  // stores the time seen
    a.commit();
    g_now_ms += kLeaseMs / 2;
    a_leases.agent_seen("edge-1");
    CHECK(check(a, a_leases));
    a.commit();
    g_now_ms += kLeaseMs / 2 + 1000;  // a lease after A first saw it; half one after it last did
    CHECK(check(b, b_leases));
    b.commit();
    CHECK(lost() == "0\n");
    g_now_ms += kLeaseMs;  // nobody saw it since
    CHECK(check(b, b_leases));
    b.commit();
    CHECK(lost() == "1\n");
  }
  SECTION("an attempt not started within the lease is lost once, both hubs checking at once") {
    g_now_ms += kLeaseMs + 1000;
    CHECK(check(a, a_leases));  // A's turn stays open
    CHECK(check(b, b_leases));
    b.commit();
    a.commit();
    CHECK(lost() == "1\n");
    // The task (one attempt allowed) ends lost, once.
    CHECK(server.psql("SELECT state FROM tasks WHERE id = '" + task_id + "'") == "lost\n");
    CHECK(server.psql("SELECT count(*) FROM events WHERE task_id = '" + task_id +
                      "' AND state = 'lost'") == "1\n");
  }
}

TEST_CASE("Connected agents' seen times are stored in one statement, whatever their names",
          "[postgres][peers]") {
  TestPostgres server;
  PeerHub a(server);
  // "null" and "NULL" are valid agent names, and NULL elements of an array
  // literal when unquoted.
  const std::vector<std::string> names = {"edge-1", "null", "NULL", "a.b:c_d"};
  for (const auto& name : names)
    a.agents.add(name, protocol::sha256_hex("token-" + name), {});
  a.commit();
  a.agents.record_seen_all(names, 1234567);
  a.commit();
  CHECK(server.psql("SELECT name, seen_at_ms FROM agents ORDER BY name COLLATE \"C\"") ==
        "NULL|1234567\na.b:c_d|1234567\nedge-1|1234567\nnull|1234567\n");
}

TEST_CASE(
    "A turn's notices reach the other hubs in the order made; those of a failed entry point or a "
    "failed commit never do",
    "[postgres][peers]") {
  TestPostgres server;
  core::Loop loop;
  auto a = std::make_unique<ListeningHub>(loop, server);
  auto b = std::make_unique<ListeningHub>(loop, server);
  auto steps = [&]() -> core::Co<void> {
    auto cancel_of = [](const std::string& task, std::string reason) {
      protocol::TaskCancel cancel;
      cancel.attempt.task_id = task;
      cancel.attempt.attempt_id = task + "-1";
      cancel.reason = std::move(reason);
      return cancel;
    };
    // One turn on B, three entry points; the second fails after its notice.
    auto kept = [&] { b->bus.wake("edge-1"); };
    auto failed = [&] {
      b->bus.wake("edge-2");
      throw std::runtime_error("the entry point broke");
    };
    auto more = [&] {
      b->bus.cancel("edge-3", cancel_of("t-3", std::string("stop\0after a NUL", 16)));
      b->bus.wake("edge-4");
      b->bus.wake("edge-5");
    };
    CHECK(b->store->guarded("kept", kept) == core::SqlStore::Outcome::kDone);
    CHECK(b->store->guarded("failed", failed) == core::SqlStore::Outcome::kFailed);
    CHECK(b->store->guarded("more", more) == core::SqlStore::Outcome::kDone);
    b->commit();
    co_await a->until([&] { return a->wakes.size() >= 3 && !a->cancels.empty(); });
    CHECK(a->wakes == std::vector<std::string>{"edge-1", "edge-4", "edge-5"});
    CHECK(a->cancels == std::vector<std::string>{"edge-3 t-3 t-3-1 stop"});

    // A commit that fails after the notices were gathered sends none of
    // them, and the next turn's go alone.
    auto doomed = [&] {
      b->bus.wake("edge-6");
      b->store->before_commit([] { throw core::SqlError("a flush failed", false); });
    };
    CHECK(b->store->guarded("doomed", doomed) == core::SqlStore::Outcome::kDone);
    CHECK_FALSE(b->store->commit().ok());
    auto next = [&] { b->bus.wake("edge-7"); };
    CHECK(b->store->guarded("next", next) == core::SqlStore::Outcome::kDone);
    b->commit();
    co_await a->until([&] { return a->wakes.size() >= 4; });
    CHECK(a->wakes == std::vector<std::string>{"edge-1", "edge-4", "edge-5", "edge-7"});
  };
  run_with_cleanup(loop, steps, [&] {
    a.reset();
    b.reset();
  });
}

TEST_CASE("A hub database of version 10 on PostgreSQL is brought to 11", "[postgres][peers]") {
  TestPostgres server;
  { PeerHub first(server); }
  server.psql("ALTER TABLE agents DROP COLUMN seen_at_ms; UPDATE schema_version SET version = 10");
  PeerHub again(server);
  CHECK(server.psql("SELECT version FROM schema_version") == "11\n");
  CHECK(server.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'agents' "
                    "AND column_name = 'seen_at_ms'") == "1\n");
}

TEST_CASE(
    "A run decides at its turn's commit for the tasks that ended in it; a decision that fails "
    "there leaves the task ends stored and is taken again by the next sweep",
    "[postgres][peers]") {
  TestPostgres server;
  PeerHub a(server);
  for (const char* name : {"edge-1", "edge-2"})
    a.agents.add(name, protocol::sha256_hex(name), {});
  a.commit();
  protocol::RunRequest request;
  request.agents = {"edge-1", "edge-2"};
  request.spec.argv = {"true"};
  auto run = a.runs.create(request, request.agents, "test");
  REQUIRE(run.ok());
  a.commit();
  const std::string run_id = run->id;
  auto run_state = [&] {
    return server.psql("SELECT state FROM runs WHERE id = '" + run_id + "'");
  };
  // The database refuses any change to the run while `refuse` says so.
  server.psql(
      "CREATE TABLE refuse (now boolean); INSERT INTO refuse VALUES (true); "
      "CREATE FUNCTION refuse_run() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF (SELECT now "
      "FROM refuse) THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; "
      "CREATE TRIGGER refuse_run BEFORE UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION "
      "refuse_run()");

  // Both tasks end in one turn; the run's decision (it has ended) fails.
  auto end_both = [&] {
    for (const auto& row : a.run_records.decision_rows(run_id)) {
      auto task = a.tasks.find_task(row.task_id);
      REQUIRE(task);
      a.transitions.transition(*task, hub::TaskState::kSkipped, "", "ended by the test");
    }
  };
  REQUIRE(a.store->guarded("end both", end_both) == core::SqlStore::Outcome::kDone);
  a.commit();
  CHECK(server.psql("SELECT count(*) FROM tasks WHERE run_id = '" + run_id +
                    "' AND state = 'skipped'") == "2\n");
  CHECK(run_state() == "running\n");

  // Refused again: still undecided, and taken once more by the next sweep.
  auto sweep = [&] { a.runs.sweep(hub::wall_clock_ms()); };
  CHECK(a.store->guarded("sweep", sweep) == core::SqlStore::Outcome::kFailed);
  a.commit();
  CHECK(run_state() == "running\n");
  server.psql("UPDATE refuse SET now = false");
  CHECK(a.store->guarded("sweep", sweep) == core::SqlStore::Outcome::kDone);
  a.commit();
  CHECK(run_state() != "running\n");
}

TEST_CASE(
    "Two hubs on one database decide for a run one at a time: the second waits for the first "
    "one's open turn",
    "[postgres][peers]") {
  TestPostgres server;
  PeerHub a(server);
  PeerHub b(server);
  for (const char* name : {"edge-1", "edge-2", "edge-3"})
    a.agents.add(name, protocol::sha256_hex(name), {});
  a.commit();
  protocol::RunRequest request;
  request.agents = {"edge-1", "edge-2", "edge-3"};
  request.spec.argv = {"true"};
  request.max_concurrency = {1, false};
  auto run = a.runs.create(request, request.agents, "test");
  REQUIRE(run.ok());
  a.commit();
  const std::string run_id = run->id;

  REQUIRE(a.runs.cancel(run_id, "stop").ok());  // A's turn stays open, the run locked
  TurnOnItsOwnThread deciding(b, [&] {
    b.store->begin_write();
    b.runs.task_ended(run_id);  // only reads, unless it waits for A
  });
  CHECK(deciding.waits(server));
  a.commit();
  CHECK(deciding.join().empty());
  // Every task ended once: skipped (never released) or cancelled.
  CHECK(server.psql("SELECT count(*) FROM tasks WHERE run_id = '" + run_id +
                    "' AND state NOT IN ('skipped', 'cancelled')") == "0\n");
}

}  // namespace tether::test
