// A task must never go to a long poll whose agent is gone: an agent stopped
// and started again at once leaves its old poll parked at the hub, and a
// proxy that cuts connections leaves one without a client. The task goes to
// the agent that is there, at once, not after the 60 s lease.
#include <signal.h>

#include <regex>

#include "agent_world.hpp"
#include "core/http_client.hpp"
#include "core/timer.hpp"

using namespace tether;
using namespace tether::test;

namespace {

// Long polls the hub has seen parked: tether_hub_polls_parked plus those
// it dropped because their agent had gone (tether_hub_polls_departed_total).
core::Co<int> parked_polls(AgentWorld& world) {
  static const std::regex address("metrics on (http://[^ ]+)/metrics");
  std::smatch match;
  const std::string log = world.hub.log();
  REQUIRE(std::regex_search(log, match, address));
  core::HttpCall call;
  call.server = *core::parse_url(match[1].str());
  call.target = "/metrics";
  auto reply = co_await core::http_request(world.loop, world.pool, std::move(call));
  REQUIRE(reply.ok());
  static const std::regex parked("\ntether_hub_polls_parked ([0-9]+)");
  REQUIRE(std::regex_search(reply->body, match, parked));
  const int waiting = std::stoi(match[1].str());
  static const std::regex departed("\ntether_hub_polls_departed_total ([0-9]+)");
  REQUIRE(std::regex_search(reply->body, match, departed));
  co_return waiting + std::stoi(match[1].str());
}

// Until the hub holds `count` parked polls; false after `timeout_ms`.
core::Co<bool> wait_for_parked(AgentWorld& world, int count, uint64_t timeout_ms) {
  world.loop.update_time();
  const uint64_t end = world.loop.now_ms() + timeout_ms;
  for (;;) {
    const int now = co_await parked_polls(world);
    if (now >= count) co_return true;
    world.loop.update_time();
    if (world.loop.now_ms() >= end) co_return false;
    auto paused = co_await core::sleep_for(world.loop, 20);
    (void)paused;
  }
}

AgentWorldOptions with_metrics() {
  AgentWorldOptions options;
  options.hub_args = {"--metrics-listen", "127.0.0.1:0"};
  return options;
}

}  // namespace

TEST_CASE("an agent restarted at once gets the next task, not its old process's parked poll",
          "[agent][e2e]") {
  AgentWorld world(with_metrics());
  world.run([&]() -> core::Co<void> {
    const bool polling = co_await wait_for_parked(world, 1, 20'000);
    REQUIRE(polling);
    const int stopped = co_await world.agent.stop(SIGTERM);
    CHECK(stopped == 0);
    co_await world.agent.start();
    // The new run's poll has arrived while the old one was still parked
    // (a hub that does not notice it is gone hands the next task to it).
    const bool both = co_await wait_for_parked(world, 2, 20'000);
    REQUIRE(both);
    const std::string id = co_await world.submit_shell("echo picked up");
    // Well inside the 60 s lease: the old poll must not have taken it.
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    const std::string out = co_await world.op().output(id, "stdout");
    CHECK(out == "picked up\n");
  });
}

TEST_CASE("a parked poll whose connection a proxy cut never gets a task", "[agent][e2e]") {
  AgentWorld world(through_proxy());
  world.run([&]() -> core::Co<void> {
    const bool connected = co_await world.agent.wait_for_log("connected to", 20'000);
    REQUIRE(connected);
    const size_t from = world.agent.log().size();
    world.proxy->reset_all();  // the parked poll's connection and the channel
    const bool again = co_await world.agent.wait_for_log("connected to", 20'000, from);
    REQUIRE(again);
    const std::string id = co_await world.submit_shell("echo after the cut");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
  });
}
