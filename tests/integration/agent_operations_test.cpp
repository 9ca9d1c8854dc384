// What operators use to watch a live agent and hub: `tether-agent status`
// (over the status socket, plus the outbox file), the Prometheus endpoints,
// and the sd_notify messages systemd acts on. Real processes throughout.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "agent_world.hpp"
#include "core/http_client.hpp"
#include "core/timer.hpp"
#include "protocol/json_reader.hpp"

using namespace tether;
using namespace tether::test;

namespace {

ProgramRun agent_status(const AgentProcess& agent, bool json) {
  std::vector<std::string> argv = {env_path("TETHER_AGENT"), "status", "--state-dir",
                                   agent.state_dir()};
  if (json) argv.push_back("--json");
  return run_program(argv);
}

rapidjson::Document status_document(const AgentProcess& agent) {
  auto run = agent_status(agent, true);
  INFO(run.out);
  auto document = protocol::parse_json_object(run.out, "status");
  REQUIRE(document.ok());
  return std::move(*document);
}

// Polls `tether-agent status --json` until `holds` is true; false after `timeout_ms`.
core::Co<bool> wait_for_status(core::Loop& loop, const AgentProcess& agent,
                               std::function<bool(const rapidjson::Document&)> holds,
                               uint64_t timeout_ms) {
  const uint64_t end = loop.now_ms() + timeout_ms;
  for (;;) {
    auto document = status_document(agent);
    if (holds(document)) co_return true;
    loop.update_time();
    if (loop.now_ms() >= end) co_return false;
    auto waited = co_await core::sleep_for(loop, 50);
    (void)waited;
  }
}

int port_in_log(const std::string& log, const std::string& what) {
  static const std::regex metrics("metrics on http://[^ :]+:([0-9]+)/metrics");
  std::smatch match;
  INFO(what << " log: " << log);
  REQUIRE(std::regex_search(log, match, metrics));
  return std::stoi(match[1]);
}

core::Co<std::string> scrape(core::Loop& loop, core::ThreadPool& pool, int port) {
  core::HttpCall call;
  call.server = *core::parse_url("http://127.0.0.1:" + std::to_string(port));
  call.target = "/metrics";
  auto reply = co_await core::http_request(loop, pool, std::move(call));
  REQUIRE(reply.ok());
  INFO(reply->body);
  REQUIRE(reply->status == 200);
  CHECK_THAT(reply->header("content-type"), Catch::StartsWith("text/plain; version=0.0.4"));
  co_return reply->body;
}

// The value of one sample ("name" or "name{labels}"); -1 if absent.
double sample(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

// Collects the datagrams a service sends to NOTIFY_SOCKET.
class NotifyListener {
 public:
  explicit NotifyListener(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    timeval timeout{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    reader_ = std::thread([this] {
      char buffer[4096];
      while (!done_) {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) continue;
        std::lock_guard lock(mutex_);
        messages_.emplace_back(buffer, static_cast<size_t>(n));
      }
    });
  }
  ~NotifyListener() {
    done_ = true;
    reader_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::vector<std::string> messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  size_t count_containing(const std::string& text) {
    size_t count = 0;
    for (const auto& message : messages())
      count += message.find(text) != std::string::npos ? 1 : 0;
    return count;
  }
  // Waits until `count` messages contain `text`.
  core::Co<bool> wait_for(core::Loop& loop, std::string text, size_t count, uint64_t timeout_ms) {
    loop.update_time();
    const uint64_t end = loop.now_ms() + timeout_ms;
    while (count_containing(text) < count) {
      loop.update_time();
      if (loop.now_ms() >= end) co_return false;
      auto waited = co_await core::sleep_for(loop, 20);
      (void)waited;
    }
    co_return true;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> done_{false};
  std::mutex mutex_;
  std::vector<std::string> messages_;
  std::thread reader_;
};

}  // namespace

TEST_CASE("status and metrics follow a task through a hub outage; the token never shows",
          "[operations]") {
  AgentWorldOptions options;
  options.hub_args = {"--metrics-listen", "127.0.0.1:0"};
  AgentWorld world(options);
  world.agent.set("metrics_listen", "127.0.0.1:0");
  world.run([&]() -> core::Co<void> {
    const int agent_metrics = port_in_log(world.agent.log(), "agent");
    const int hub_metrics = port_in_log(world.hub.log(), "hub");
    const std::string flag = world.dir.path() + "/go";
    const std::string task_id =
        co_await world.submit_shell("echo first; while [ ! -e '" + flag +
                                    "' ]; do sleep 0.02; done; echo second; "
                                    "while [ ! -e '" +
                                    flag + "2' ]; do sleep 0.02; done; echo third");
    auto op = world.op();
    const bool first = co_await op.wait_for_output(task_id, "stdout", 6, 10000);
    REQUIRE(first);

    // Live: connected, one task running, its bytes counted.
    auto text = agent_status(world.agent, false);
    INFO(text.out);
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("channel:   connected since"));
    CHECK_THAT(text.out, Catch::Contains("tasks:     1 of 4 running"));
    CHECK_THAT(text.out, Catch::Contains(task_id));
    CHECK(text.out.find(world.agent_token) == std::string::npos);
    auto live = status_document(world.agent);
    REQUIRE(live["agent"].IsObject());
    CHECK(std::string(live["agent"]["channel"]["state"].GetString()) == "connected");
    REQUIRE(live["agent"]["running"].Size() == 1);
    CHECK(std::string(live["agent"]["running"][0]["task_id"].GetString()) == task_id);
    CHECK(live["agent"]["running"][0]["stdout_bytes"].GetUint64() == 6);
    CHECK(live["outbox"]["exists"].GetBool());

    const std::string hub_before = co_await scrape(world.loop, world.pool, hub_metrics);
    CHECK(sample(hub_before, "tether_hub_agents_connected") == 1);
    CHECK(sample(hub_before, "tether_hub_tasks{state=\"running\"}") == 1);

    // The hub goes away; output keeps coming and piles up in the outbox.
    co_await world.hub.stop(SIGTERM);
    { std::ofstream touch(flag); }
    const bool piled = co_await wait_for_status(
        world.loop, world.agent,
        [](const rapidjson::Document& status) {
          return status["agent"].IsObject() &&
                 std::string(status["agent"]["channel"]["state"].GetString()) == "disconnected" &&
                 status["outbox"]["by_kind"]["output"].GetUint64() >= 1 &&
                 status["outbox"]["output_bytes"].GetUint64() >= 7;
        },
        15000);
    CHECK(piled);
    auto backlog = status_document(world.agent);
    CHECK(backlog["agent"]["outbox"]["rows"].GetUint64() >= 1);
    CHECK_FALSE(std::string(backlog["agent"]["channel"]["last_error"].GetString()).empty());
    const std::string metrics = co_await scrape(world.loop, world.pool, agent_metrics);
    INFO(metrics);
    CHECK(sample(metrics, "tether_agent_channel_connected") == 0);
    CHECK(sample(metrics, "tether_agent_outbox_frames") >= 1);
    CHECK(sample(metrics, "tether_agent_tasks_running") == 1);
    CHECK(sample(metrics, "tether_agent_outbox_oldest_age_seconds") >= 0);
    CHECK(metrics.find(world.agent_token) == std::string::npos);

    // Back again: the backlog drains, the reconnect is counted.
    co_await world.hub.start();
    const bool drained = co_await world.agent.wait_for_log("backlog delivered", 20000);
    CHECK(drained);
    { std::ofstream touch(flag + "2"); }
    auto final_view = co_await world.final_of(task_id, "succeeded", 15000);
    CHECK(final_view.out.bytes == std::string("first\nsecond\nthird\n").size());
    const bool empty = co_await wait_for_status(
        world.loop, world.agent,
        [](const rapidjson::Document& status) {
          return status["outbox"]["frames"].GetUint64() == 0 &&
                 status["agent"]["running"].Size() == 0;
        },
        10000);
    CHECK(empty);
    const std::string after = co_await scrape(world.loop, world.pool, agent_metrics);
    CHECK(sample(after, "tether_agent_channel_reconnects_total") == 1);
    CHECK(sample(after, "tether_agent_channel_connected") == 1);
    CHECK(sample(after, "tether_agent_tasks_received_total") == 1);

    // The hub's own (port 0 again: a new port after the restart). A restart
    // resets its counters; the tasks are stored.
    const int hub_metrics_after =
        port_in_log(world.hub.log().substr(world.hub.log().rfind("metrics on")), "hub");
    const std::string hub_text = co_await scrape(world.loop, world.pool, hub_metrics_after);
    INFO(hub_text);
    CHECK(sample(hub_text, "tether_hub_agents_connected") == 1);
    CHECK(sample(hub_text, "tether_hub_tasks{state=\"succeeded\"}") == 1);
    CHECK(sample(hub_text, "tether_hub_output_bytes_received_total") >= 6);
    CHECK(sample(hub_text, "tether_hub_channel_connections_total") == 1);

    // Stopped: status says so (exit 3) and still reads the outbox.
    const int code = co_await world.agent.stop(SIGTERM);
    CHECK(code == 0);
    auto stopped = agent_status(world.agent, false);
    CHECK(stopped.exit_code == 3);
    CHECK_THAT(stopped.out, Catch::Contains("not running"));
    CHECK_THAT(stopped.out, Catch::Contains("0 frame(s) waiting"));
  });
}

TEST_CASE("a second agent on the same state directory is refused before it opens the outbox",
          "[operations]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    auto second = run_program({"sh", "-c",
                               shell_quote(env_path("TETHER_AGENT")) + " run --config " +
                                   shell_quote(world.agent.config_path()) + " 2>&1"});
    CHECK(second.exit_code == 1);
    CHECK_THAT(second.out, Catch::Contains("is a second agent using this state directory?"));
    // The first one is untouched and still answers.
    auto status = agent_status(world.agent, false);
    CHECK(status.exit_code == 0);
    co_return;
  });
}

TEST_CASE("systemd: READY after start, watchdog pings, STOPPING on SIGTERM, for agent and hub",
          "[operations]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  NotifyListener agent_notify(world.dir.path() + "/agent-notify.sock");
  world.agent.add_environment("NOTIFY_SOCKET=" + agent_notify.path());
  world.agent.add_environment("WATCHDOG_USEC=300000");
  world.run([&]() -> core::Co<void> {
    co_await world.agent.start();
    const bool ready = co_await agent_notify.wait_for(world.loop, "READY=1", 1, 5000);
    REQUIRE(ready);
    CHECK_THAT(agent_notify.messages().front(), Catch::Contains("STATUS="));
    // Pings at half the interval: several within a second.
    const bool pinging = co_await agent_notify.wait_for(world.loop, "WATCHDOG=1", 4, 5000);
    CHECK(pinging);
    const bool connected_status =
        co_await agent_notify.wait_for(world.loop, "STATUS=connected to", 1, 5000);
    CHECK(connected_status);
    CHECK(agent_notify.count_containing("STOPPING=1") == 0);
    const int code = co_await world.agent.stop(SIGTERM);
    CHECK(code == 0);
    CHECK(agent_notify.count_containing("STOPPING=1") == 1);
    // Nothing after STOPPING: the pings stopped with it.
    const auto messages = agent_notify.messages();
    size_t stopping_at = 0;
    for (size_t i = 0; i < messages.size(); ++i)
      if (messages[i].find("STOPPING=1") != std::string::npos) stopping_at = i;
    CHECK(stopping_at == messages.size() - 1);

    // Without NOTIFY_SOCKET nothing is sent (the world's hub runs so) and
    // with it the hub says the same things.
    NotifyListener hub_notify(world.dir.path() + "/hub-notify.sock");
    co_await world.hub.stop(SIGTERM);
    world.hub.add_environment("NOTIFY_SOCKET=" + hub_notify.path());
    world.hub.add_environment("WATCHDOG_USEC=300000");
    co_await world.hub.start();
    const bool hub_ready = co_await hub_notify.wait_for(world.loop, "READY=1", 1, 5000);
    CHECK(hub_ready);
    const bool hub_pinging = co_await hub_notify.wait_for(world.loop, "WATCHDOG=1", 3, 5000);
    CHECK(hub_pinging);
    co_await world.hub.stop(SIGTERM);
    CHECK(hub_notify.count_containing("STOPPING=1") == 1);
  });
}

TEST_CASE("the token is in no task's environment, and in neither argv nor environment of the agent",
          "[operations]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  // The agent learns its token file from the environment, as under systemd.
  world.agent.add_environment("TETHER_AGENT_TOKEN_FILE=" + world.dir.path() + "/agent.token");
  world.run([&]() -> core::Co<void> {
    co_await world.agent.start();
    const std::string id =
        co_await world.submit_shell("env; echo; tr '\\0' ' ' < /proc/$PPID/cmdline");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    const std::string seen = co_await world.op().output(id, "stdout");
    INFO(seen);
    CHECK_THAT(seen, Catch::Contains("PATH="));
    CHECK(seen.find(world.agent_token) == std::string::npos);
    CHECK(seen.find("TETHER_AGENT_TOKEN_FILE") == std::string::npos);
    // What ps and /proc show of the agent itself.
    const std::string proc = "/proc/" + std::to_string(world.agent.process().pid());
    for (const std::string file : {"/cmdline", "/environ"}) {
      std::ifstream in(proc + file);
      const std::string text((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      CHECK_FALSE(text.empty());
      CHECK(text.find(world.agent_token) == std::string::npos);
    }
    // Nor its log.
    CHECK(world.agent.log().find(world.agent_token) == std::string::npos);
  });
}

TEST_CASE("under journald (JOURNAL_STREAM set) lines carry a syslog priority and no timestamp",
          "[operations]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  world.agent.add_environment("JOURNAL_STREAM=8:12345");
  world.run([&]() -> core::Co<void> {
    co_await world.agent.start();
    const bool connected = co_await world.agent.wait_for_log("<6>channel: connected to", 10'000);
    CHECK(connected);
    // A warning too: with the hub gone, a refused channel is one.
    co_await world.hub.stop(SIGTERM);
    const bool warned = co_await world.agent.wait_for_log("<4>channel: cannot open", 20'000);
    CHECK(warned);
    std::istringstream lines(world.agent.log());
    std::string line;
    int checked = 0;
    while (std::getline(lines, line)) {
      if (line.empty()) continue;
      INFO(line);
      CHECK(std::regex_match(line, std::regex("<[3467]>[a-z]+: .*")));
      ++checked;
    }
    CHECK(checked >= 3);
    CHECK_THAT(world.agent.log(), Catch::Contains("<6>agent: agent edge-1 for"));
    co_await world.hub.start();
  });
}

TEST_CASE("an agent started from an operator's shell ignores the operator's TETHER_TOKEN_FILE",
          "[operations]") {
  AgentWorldOptions options;
  options.start_agent = false;
  AgentWorld world(options);
  // As after the README's "by hand" section: the operator's variables are
  // exported in the shell that starts the agent from its config file.
  const std::string admin_file = world.dir.write_secret("admin.token", world.admin_token);
  world.agent.add_environment("TETHER_TOKEN_FILE=" + admin_file);
  world.agent.add_environment("TETHER_HUB_URL=http://127.0.0.1:1");
  world.run([&]() -> core::Co<void> {
    co_await world.agent.start();
    const bool connected = co_await world.agent.wait_for_log("connected to", 20'000);
    REQUIRE(connected);
    const std::string id = co_await world.submit_shell("echo with its own token");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    const std::string& log = world.agent.log();
    CHECK_THAT(log, Catch::Contains("TETHER_TOKEN_FILE is set but ignored"));
    CHECK_THAT(log, Catch::Contains("TETHER_HUB_URL is set but ignored"));
    // Where each setting came from, at start.
    CHECK_THAT(log, Catch::Contains("hub_url from " + world.agent.config_path() + ":"));
    CHECK_THAT(log, Catch::Contains("token_file from " + world.agent.config_path() + ":"));
  });
}

TEST_CASE(
    "an agent with another principal's token says whose it is and where it came from; "
    "its running attempt becomes lost",
    "[operations]") {
  AgentWorldOptions options;
  options.hub_args = {"--lease-s", "3"};
  AgentWorld world(options);
  world.run([&]() -> core::Co<void> {
    const std::string id = co_await world.submit_shell("echo started; sleep 600");
    const bool running = co_await world.op().wait_for_output(id, "stdout", 8, 20'000);
    REQUIRE(running);
    (void)co_await world.agent.stop(SIGKILL);
    // Started again with the operator's token named in its own variable.
    const std::string admin_file = world.dir.write_secret("admin.token", world.admin_token);
    world.agent.add_environment("TETHER_AGENT_TOKEN_FILE=" + admin_file);
    const size_t from = world.agent.log().size();
    co_await world.agent.start();
    const bool refused = co_await world.agent.wait_for_log(
        "this is an operator (admin) token, not agent edge-1's", 20'000, from);
    REQUIRE(refused);
    CHECK_THAT(world.agent.log(), Catch::Contains("the token is from " + admin_file +
                                                  " (environment TETHER_AGENT_TOKEN_FILE)"));
    // The hub never hears from it: the lease ends the attempt.
    const bool lost = co_await world.op().wait_for_state(id, "lost", 30'000);
    CHECK(lost);
  });
}

TEST_CASE("status run by a user who may not ask the agent says so, not 'not running'",
          "[agent][e2e]") {
  INFO("needs root to run the command as another user (runuser)");
  REQUIRE(::geteuid() == 0);
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    // The test's directory is 0700: like /var/lib/tether (0750, tether) to
    // a user outside the group.
    const auto outsider = run_program({"runuser", "-u", "nobody", "--", env_path("TETHER_AGENT"),
                                       "status", "--state-dir", world.agent.state_dir()},
                                      true);
    INFO(outsider.out);
    CHECK(outsider.exit_code == 1);
    CHECK_THAT(outsider.out, Catch::Contains("cannot ask the agent"));
    CHECK_THAT(outsider.out, Catch::Contains("Permission denied"));
    CHECK_THAT(outsider.out, !Catch::Contains("not running"));
    const auto owner = agent_status(world.agent, false);
    CHECK(owner.exit_code == 0);
    co_return;
  });
}
