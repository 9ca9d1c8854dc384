// Agent labels (docs/protocol.md 4.1 agent.hello `labels`, 11 GET
// /api/v1/agents; docs/operations.md "Labels"): what an agent says of itself
// in its hello, the hub's own labels for it (`tether-hub agent label`), which
// take precedence, and the audit trail of changes to them. Written from the
// documents: a scripted agent sends the hello as section 4.1 shows it.
#include "harness.hpp"
#include "protocol/operator_api.hpp"
#include "roles.hpp"

using namespace tether;
using namespace tether::test;

namespace {

// `tether-hub agent label ARGS... --data-dir DIR`: its exit status and
// stdout and stderr together.
std::pair<int, std::string> label(const std::string& data_dir, const std::string& args) {
  return shell_output("'" + env_path("TETHER_HUB") + "' agent label " + args + " " +
                      hub_data_dir_words(data_dir) + " 2>&1");
}

// edge-1 as GET /api/v1/agents shows it.
core::Co<protocol::AgentView> edge_1(Operator& op) {
  auto reply = co_await op.request("GET", "/api/v1/agents");
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  auto agents = protocol::decode_agent_list(reply->body);
  REQUIRE(agents.ok());
  for (auto& agent : *agents) {
    if (agent.name == "edge-1") co_return agent;
  }
  FAIL("no edge-1 in " << reply->body);
  co_return protocol::AgentView{};
}

}  // namespace

TEST_CASE("labels from the hello, the hub's own over them, and every change audited",
          "[hub][labels]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent();
    protocol::AgentHello hello;
    hello.version = "test";
    hello.labels = {{"role", "web"}, {"region", "eu"}};
    (void)co_await agent.connect_and_hello(hello);
    const protocol::Labels reported = {{"region", "eu"}, {"role", "web"}};
    auto seen = co_await edge_1(op);
    CHECK(seen.labels == reported);
    CHECK(seen.reported_labels == reported);
    CHECK(seen.hub_labels.empty());

    // The hub's label wins over the agent's on the same key.
    auto [status, output] = label(world.data_dir, "edge-1 role=db tier=1");
    CHECK(status == 0);
    CHECK(output == "edge-1 region=eu,role=db,tier=1\n");
    auto labelled = co_await edge_1(op);
    CHECK(labelled.labels == protocol::Labels{{"region", "eu"}, {"role", "db"}, {"tier", "1"}});
    CHECK(labelled.reported_labels == reported);
    CHECK(labelled.hub_labels == protocol::Labels{{"role", "db"}, {"tier", "1"}});

    // Removing the hub's label shows the agent's again.
    auto [removed_status, removed] = label(world.data_dir, "edge-1 role-");
    CHECK(removed_status == 0);
    CHECK(removed == "edge-1 region=eu,role=web,tier=1\n");

    // Refused, naming what is wrong; nothing changes.
    auto [bad_status, bad] = label(world.data_dir, "edge-1 tier=2 zone=eu/west");
    CHECK(bad_status == 2);
    CHECK_THAT(bad, Catch::Contains("label 'zone=eu/west'"));
    auto [nobody_status, nobody] = label(world.data_dir, "edge-9 role=web");
    CHECK(nobody_status == 1);
    CHECK_THAT(nobody, Catch::Contains("no agent named edge-9"));
    auto unchanged = co_await edge_1(op);
    CHECK(unchanged.labels == protocol::Labels{{"region", "eu"}, {"role", "web"}, {"tier", "1"}});

    auto page = co_await audit_page(op, "?action=agent.label");
    REQUIRE(page.entries.size() == 2);
    CHECK(page.entries[0].target == "edge-1");
    CHECK_THAT(page.entries[0].actor, Catch::StartsWith("local:"));
    CHECK_THAT(page.entries[0].detail_json, Catch::Contains(R"("role":"db")"));
    CHECK_THAT(page.entries[1].detail_json, Catch::Contains(R"("role":null)"));

    // A new hello replaces what the agent reported; the hub's labels stay.
    agent.close();
    auto again = world.agent();
    protocol::AgentHello plain;
    plain.version = "test";
    (void)co_await again.connect_and_hello(plain);
    auto relabelled = co_await edge_1(op);
    CHECK(relabelled.reported_labels.empty());
    CHECK(relabelled.labels == protocol::Labels{{"tier", "1"}});
    again.close();
  });
}
