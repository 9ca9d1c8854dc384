// Pool tasks (docs/protocol.md 11, POST /api/v1/tasks with "selector"
// instead of "agent"): the first agent that asks for work and whose labels
// match takes the task; others never see it. Written from the documents:
// scripted agents send their labels in agent.hello (4.1) and poll (3).
#include "core/co_group.hpp"
#include "protocol/operator_api.hpp"
#include "roles.hpp"
#include "world.hpp"

using namespace tether;
using namespace tether::test;

namespace {

std::string pool_body(const std::string& selector, const std::string& extra = "") {
  return R"({"selector":")" + selector + R"(","command":{"argv":["true"]})" + extra + "}";
}

core::Co<void> hello_with(ScriptedAgent& agent, protocol::Labels labels) {
  protocol::AgentHello hello;
  hello.version = "test";
  hello.labels = std::move(labels);
  (void)co_await agent.connect_and_hello(hello);
}

core::Co<protocol::DecodedTask> view_of(Operator& op, std::string id) {
  const std::string json = co_await op.task_json(id);
  auto decoded = protocol::decode_task_view(json);
  REQUIRE(decoded.ok());
  co_return std::move(*decoded);
}

}  // namespace

TEST_CASE("a pool task goes to the first free agent whose labels match, and only to one",
          "[hub][pool]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto web = world.agent("edge-1");
    auto db = world.agent("edge-2");
    const protocol::Labels web_labels = {{"role", "web"}, {"region", "eu"}};
    co_await hello_with(web, web_labels);
    const protocol::Labels db_labels = {{"role", "db"}, {"region", "eu"}};
    co_await hello_with(db, db_labels);

    // A parked poll of a matching agent is answered at once; the other
    // agent's parked poll is not (it ends empty when its wait is over).
    int web_status = 0;
    std::optional<protocol::TaskSpec> taken;
    auto web_polls = [&]() -> core::Co<void> {
      auto reply = co_await web.poll(3);
      REQUIRE(reply.ok());
      web_status = reply->status;
    };
    auto db_polls = [&]() -> core::Co<void> {
      auto spec = co_await dispatch(db, 20);
      taken = std::move(spec);
    };
    core::CoGroup polls;
    polls.spawn(web_polls());
    polls.spawn(db_polls());
    const std::string id = co_await op.submit(pool_body("role=db, region in (eu,us)"));
    co_await polls.join();
    REQUIRE(taken.has_value());
    CHECK(taken->task_id == id);
    CHECK(web_status == 204);
    auto view = co_await view_of(op, id);
    CHECK(view.task.agent == "edge-2");
    CHECK(view.task.selector == "role=db,region in (eu,us)");  // canonical text
    CHECK(view.task.state == "dispatched");

    // No agent matches: it waits in the pool, agent "".
    const std::string waiting = co_await op.submit(pool_body("role=cache"));
    auto empty = co_await web.poll(0);
    REQUIRE(empty.ok());
    CHECK(empty->status == 204);
    auto pooled = co_await view_of(op, waiting);
    CHECK(pooled.task.agent.empty());
    CHECK(pooled.task.state == "queued");
    // The hub gives edge-1 the label: it takes the task at its next poll.
    const std::pair<int, std::string> labelled =
        shell_output("'" + env_path("TETHER_HUB") + "' agent label edge-1 role=cache " +
                     hub_data_dir_words(world.data_dir));
    REQUIRE(labelled.first == 0);
    auto cache = co_await dispatch(web, 5);
    CHECK(cache.task_id == waiting);
    web.close();
    db.close();
  });
}

TEST_CASE("a pool task whose attempt is lost goes back to the pool", "[hub][pool]") {
  World world({"--lease-s", "1"});
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto first = world.agent("edge-1");
    auto second = world.agent("edge-2");
    const protocol::Labels worker_labels = {{"role", "worker"}};
    co_await hello_with(first, worker_labels);
    co_await hello_with(second, worker_labels);
    const std::string id = co_await op.submit(pool_body("role=worker", R"(,"max_attempts":2)"));
    auto lost = co_await dispatch(first, 5);
    REQUIRE(lost.attempt_id == id + "-a1");
    // edge-1 never starts it: lost after the 1 s lease, queued again with
    // no agent, and edge-2 (also a worker) may take attempt 2.
    auto retried = co_await dispatch(second, 10);
    CHECK(retried.attempt_id == id + "-a2");
    auto view = co_await view_of(op, id);
    CHECK(view.task.agent == "edge-2");
    first.close();
    second.close();
  });
}

TEST_CASE("pool submissions and agent listings refuse what they cannot do, naming the field",
          "[hub][pool]") {
  World world;
  world.run([&]() -> core::Co<void> {
    auto op = world.op();
    auto agent = world.agent("edge-1");
    const protocol::Labels web_only = {{"role", "web"}};
    co_await hello_with(agent, web_only);
    const std::vector<std::pair<std::string, std::string>> refused = {
        {R"({"agent":"edge-1","selector":"role=web","command":{"argv":["true"]}})",
         "task.agent: give exactly one of agent"},
        {R"({"command":{"argv":["true"]}})", "task.agent: give exactly one of agent"},
        {pool_body("role in web"), "task.selector: selector: at column 9: expected ("},
        {pool_body("role=web", R"(,"target":"app","on_conflict":"reject")"),
         R"(task.on_conflict: \"reject\" needs an agent)"},
    };
    for (const auto& [body, message] : refused) {
      auto answer = co_await op.request("POST", "/api/v1/tasks", body);
      REQUIRE(answer.ok());
      INFO(body << " -> " << answer->body);
      CHECK(answer->status == 400);
      CHECK_THAT(answer->body, Catch::Contains(message));
    }
    auto none = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(none.ok());
    CHECK_THAT(none->body, Catch::Contains(R"("tasks":[])"));

    // An operator limited to some agents may not submit to the pool.
    const std::string limited = create_token(world, "deployer", "operator", "edge-*");
    Operator deployer(world.loop, world.pool, world.hub.url(), limited);
    auto forbidden = co_await deployer.request("POST", "/api/v1/tasks", pool_body("role=web"));
    REQUIRE(forbidden.ok());
    CHECK(forbidden->status == 403);
    CHECK_THAT(forbidden->body, Catch::Contains("may not submit pool tasks"));
    auto page = co_await audit_page(op, "?action=task.submit");
    REQUIRE_FALSE(page.entries.empty());
    CHECK(page.entries.back().outcome == "refused");
    CHECK(page.entries.back().actor == "deployer");

    // GET /api/v1/agents?selector=: the agents whose labels match.
    auto webs = co_await op.request("GET", "/api/v1/agents?selector=role%3Dweb");
    REQUIRE(webs.ok());
    auto listed = protocol::decode_agent_list(webs->body);
    REQUIRE(listed.ok());
    REQUIRE(listed->size() == 1);
    CHECK(listed->front().name == "edge-1");
    auto bad = co_await op.request("GET", "/api/v1/agents?selector=role%3D%3D%3D");
    REQUIRE(bad.ok());
    CHECK(bad->status == 400);
    CHECK_THAT(bad->body, Catch::Contains("selector: at column"));
    agent.close();
  });
}
