// Several hubs on one PostgreSQL database, as the hub's parts see it (the
// parts Hub assembles, two sets in this process, each on its own
// connection): what must happen once across hubs happens once. Each "turn"
// is committed by hand, as a hub's loop would at the end of the turn; a turn
// left open is a hub in the middle of its turn while the other runs.
#include <array>
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "hub/agent_directory.hpp"
#include "hub/dispatch_service.hpp"
#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "hub/output_ledger.hpp"
#include "hub/pg_hub_schema.hpp"
#include "hub/secret_vault.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_secrets.hpp"
#include "hub/task_transitions.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/sha256.hpp"
#include "test_postgres.hpp"

namespace tether::test {
namespace {

// One hub's parts on the shared database (no loop: turns commit by hand).
struct PeerHub {
  explicit PeerHub(const TestPostgres& server) : store(open(server)) {}

  static std::unique_ptr<core::PgStore> open(const TestPostgres& server) {
    core::PgSettings settings;
    settings.uri = server.url();
    settings.password = server.password();
    auto store = hub::open_pg_hub_store(settings, false);
    INFO((store ? std::string() : store.error().message));
    REQUIRE(store.ok());
    return std::move(*store);
  }

  void commit() { REQUIRE(store->commit().ok()); }

  std::unique_ptr<core::PgStore> store;
  hub::AgentDirectory agents{*store};
  hub::TaskRepository tasks{*store};
  hub::SecretVault vault{std::array<unsigned char, hub::SecretVault::kKeyBytes>{}};
  hub::TaskSecrets secrets{*store, vault};
  hub::EventLog events{*store};
  hub::EventHub viewers;
  hub::OutputLedger ledger{events};
  hub::TaskTransitions transitions{*store, tasks, secrets, events, viewers, ledger};
  hub::DispatchService dispatch{tasks, agents, secrets, transitions};
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

}  // namespace tether::test
