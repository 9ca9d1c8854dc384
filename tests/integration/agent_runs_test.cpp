// Fan-out runs with real agents (issue [5/8]; docs/protocol.md 11.5): four
// agents with different labels, one of them never started (offline), one
// whose task fails, one killed in the middle of its task. The run is read
// back through the operator API; `failed` and `lost` are counted apart.
#include <sys/stat.h>

#include <filesystem>
#include <sstream>

#include "agent_world.hpp"
#include "protocol/run_api.hpp"

using namespace tether;
using namespace tether::test;

namespace {

// An agent of its own, in DIR/NAME, registered with the world's hub.
std::unique_ptr<AgentProcess> another_agent(AgentWorld& world, const std::string& name,
                                            const std::string& labels) {
  const std::string token = hub_command({"agent", "add", name, "--data-dir", world.data_dir});
  const std::string dir = world.dir.path() + "/" + name;
  std::filesystem::create_directory(dir);
  ::chmod(dir.c_str(), 0711);
  auto agent = std::make_unique<AgentProcess>(world.loop, dir, name, token);
  agent->set("labels", labels);
  return agent;
}

core::Co<protocol::RunView> finished_run(Operator& op, std::string id) {
  // The run's stream ends once the run has (docs/protocol.md 11.5).
  auto stream = co_await op.request("GET", "/api/v1/runs/" + id + "/events?output=0");
  REQUIRE(stream.ok());
  auto reply = co_await op.request("GET", "/api/v1/runs/" + id);
  REQUIRE(reply.ok());
  auto run = protocol::decode_run_view(reply->body);
  REQUIRE(run.ok());
  INFO(reply->body);
  co_return std::move(*run);
}

const protocol::RunTaskView& task_of(const protocol::RunView& run, const std::string& agent) {
  for (const auto& task : run.tasks) {
    if (task.agent == agent) return task;
  }
  FAIL("no task of " << agent);
  return run.tasks.front();
}

}  // namespace

TEST_CASE("a run over real agents: failed, lost and offline counted apart", "[agent][e2e][runs]") {
  AgentWorldOptions options;
  options.start_agent = false;
  options.hub_args = {"--lease-s", "2"};
  AgentWorld world(options);
  auto web_1 = another_agent(world, "web-1", "role=web");
  auto web_2 = another_agent(world, "web-2", "role=web");
  auto web_3 = another_agent(world, "web-3", "role=web");  // stopped before the run: offline
  auto db_1 = another_agent(world, "db-1", "role=db");
  world.run([&]() -> core::Co<void> {
    for (auto* agent : {web_1.get(), web_2.get(), web_3.get(), db_1.get()}) {
      agent->set("hub_url", world.hub.url());
      co_await agent->start();
      const bool connected = co_await agent->wait_for_log("connected to", 10'000);
      REQUIRE(connected);
    }
    // web-3 has said its labels in a hello; now it goes away.
    (void)co_await web_3->stop(SIGTERM);
    auto op = world.op();
    // web-2's task fails; web-1's runs until its agent is killed.
    const std::string script =
        "case \"$HOME\" in */web-2/*) echo broken >&2; exit 3;; */web-1/*) sleep 60;; esac; "
        "echo ok";
    protocol::RunRequest request;
    request.selector = "role=web";
    request.spec.shell = script;
    request.max_errors = protocol::RunAmount{1, false};
    request.offline_timeout_s = 1;
    auto created =
        co_await op.request("POST", "/api/v1/runs", protocol::encode_run_request(request));
    REQUIRE(created.ok());
    REQUIRE(created->status == 201);
    auto run = protocol::decode_run_view(created->body);
    REQUIRE(run.ok());
    CHECK(run->tasks.size() == 3);  // db-1 does not match

    const bool received = co_await web_1->wait_for_log("received", 10'000);
    REQUIRE(received);
    (void)co_await web_1->stop(SIGKILL);

    auto ended = co_await finished_run(op, run->id);
    CHECK(ended.state == "failed");  // not stopped: one error is allowed
    CHECK(ended.errors == 1);
    CHECK(ended.counts["failed"] == 1);
    CHECK(ended.counts["lost"] == 1);
    CHECK(ended.counts["skipped"] == 1);
    CHECK(task_of(ended, "web-2").exit_code == 3);
    CHECK(task_of(ended, "web-3").note == "agent web-3 offline for 1 s");
    const std::string failed_err = co_await op.output(task_of(ended, "web-2").task_id, "stderr");
    CHECK(failed_err == "broken\n");
    (void)co_await web_2->stop(SIGTERM);
    (void)co_await db_1->stop(SIGTERM);
  });
}

TEST_CASE("a run over real agents: a failing canary stops it, max_concurrency holds",
          "[agent][e2e][runs]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  std::vector<std::unique_ptr<AgentProcess>> agents;
  for (const char* name : {"app-1", "app-2", "app-3"})
    agents.push_back(another_agent(world, name, "role=app"));
  world.run([&]() -> core::Co<void> {
    for (auto& agent : agents) {
      agent->set("hub_url", world.hub.url());
      co_await agent->start();
      const bool connected = co_await agent->wait_for_log("connected to", 10'000);
      REQUIRE(connected);
    }
    auto op = world.op();
    protocol::RunRequest canary;
    canary.agents = {"app-1", "app-2", "app-3"};
    canary.spec.shell = "case \"$HOME\" in */app-1/*) exit 1;; esac; echo fine";
    canary.canary = 1;
    auto created =
        co_await op.request("POST", "/api/v1/runs", protocol::encode_run_request(canary));
    REQUIRE(created.ok());
    REQUIRE(created->status == 201);
    auto run = protocol::decode_run_view(created->body);
    REQUIRE(run.ok());
    auto stopped = co_await finished_run(op, run->id);
    CHECK(stopped.state == "stopped");
    CHECK(stopped.stop_reason == "canary on app-1 ended failed");
    CHECK(stopped.counts["failed"] == 1);
    CHECK(stopped.counts["skipped"] == 2);

    // One at a time: each task starts after the one before has ended.
    protocol::RunRequest serial;
    serial.selector = "role=app";
    serial.spec.shell = "echo start; sleep 0.2; echo end";
    serial.max_concurrency = protocol::RunAmount{1, false};
    auto second = co_await op.request("POST", "/api/v1/runs", protocol::encode_run_request(serial));
    REQUIRE(second.ok());
    auto serial_run = protocol::decode_run_view(second->body);
    REQUIRE(serial_run.ok());
    auto done = co_await finished_run(op, serial_run->id);
    CHECK(done.state == "succeeded");
    std::vector<std::pair<std::string, std::string>> spans;
    for (const auto& task : done.tasks)
      spans.emplace_back(task.started_at, task.finished_at);
    std::sort(spans.begin(), spans.end());
    REQUIRE(spans.size() == 3);
    for (size_t i = 1; i < spans.size(); ++i)
      CHECK(spans[i].first >= spans[i - 1].second);
    for (auto& agent : agents)
      (void)co_await agent->stop(SIGTERM);
  });
}

TEST_CASE("tether run --selector over real agents: each host's lines prefixed, byte-exact",
          "[agent][e2e][runs]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  std::vector<std::unique_ptr<AgentProcess>> agents;
  for (const char* name : {"web-1", "web-2"})
    agents.push_back(another_agent(world, name, "role=web"));
  world.run([&]() -> core::Co<void> {
    for (auto& agent : agents) {
      agent->set("hub_url", world.hub.url());
      co_await agent->start();
      const bool connected = co_await agent->wait_for_log("connected to", 10'000);
      REQUIRE(connected);
    }
    const std::vector<std::string> environment = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)};
    // Two lines on stdout, one on stderr, and a last line without a newline;
    // web-2 fails.
    const std::string script =
        "echo one; echo err >&2; echo two; printf 'last'; "
        "case \"$HOME\" in */web-2/*) exit 5;; esac";
    const std::vector<std::string> args = {"run",     "--selector", "role=web",
                                           "--shell", "--",         script};
    auto run = co_await run_cli(world.loop, args, environment);
    INFO("stdout:\n" << run.out << "\nstderr:\n" << run.err);
    CHECK(run.exit_code == 1);  // docs/cli.md: every host ran it, not all succeeded
    for (const std::string host : {"web-1", "web-2"}) {
      std::string out;
      std::istringstream lines(run.out);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind(host + ": ", 0) == 0) out += line.substr(host.size() + 2) + "\n";
      }
      CHECK(out == "one\ntwo\nlast\n");
      CHECK_THAT(run.err, Catch::Contains(host + ": err\n"));
    }
    // Nothing but prefixed lines on stdout.
    std::istringstream all(run.out);
    for (std::string line; std::getline(all, line);) {
      CHECK((line.rfind("web-1: ", 0) == 0 || line.rfind("web-2: ", 0) == 0));
    }
    for (auto& agent : agents)
      (void)co_await agent->stop(SIGTERM);
  });
}
