// Task limits (docs/protocol.md 3 "limits", docs/operations.md "Cgroups"),
// end to end: `tether run --memory-max/--pids-max` through the hub to the
// real agent. Where the agent's cgroup v2 has the memory and pids
// controllers for its tasks, the limits hold and a task that needs more
// memory is killed and says so; where it has not (a v1 hybrid like the CI
// machine, or an agent not alone in its cgroup), the attempt fails before it
// starts, naming the limit. Which of the two applies is read here from the
// kernel's files for the agent's process, not from the agent.
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "agent_world.hpp"
#include "protocol/operator_api.hpp"

using namespace tether;
using namespace tether::test;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The cgroup2 mount point, or empty.
std::string cgroup2_mount() {
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    const size_t separator = line.find(" - cgroup2 ");
    if (separator == std::string::npos) continue;
    std::istringstream fields(line.substr(0, separator));
    std::vector<std::string> words;
    for (std::string field; fields >> field;)
      words.push_back(field);
    if (words.size() >= 5 && words[3] == "/") return words[4];
  }
  return {};
}

// Whether the cgroup the agent `pid` creates its tasks' cgroups in hands
// `controllers` to them: its cgroup, or the parent of the leaf "agent" it
// moves itself into (task_cgroups.hpp).
bool tasks_get_controllers(int pid, const std::vector<std::string>& controllers) {
  const std::string mount = cgroup2_mount();
  if (mount.empty()) return false;
  std::string path;
  std::istringstream lines(read_text("/proc/" + std::to_string(pid) + "/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return false;
  if (path.size() > 6 && path.compare(path.size() - 6, 6, "/agent") == 0)
    path.resize(path.size() - 6);
  std::istringstream enabled(
      read_text(mount + (path == "/" ? "" : path) + "/cgroup.subtree_control"));
  std::set<std::string> names;
  for (std::string name; enabled >> name;)
    names.insert(name);
  for (const auto& controller : controllers) {
    if (!names.count(controller)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("tether run --memory-max/--pids-max: held by the kernel, or refused naming the limit",
          "[agent][e2e][limits]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::vector<std::string> environment = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)};
    const std::vector<std::string> args = {"run",  "--agent",          "edge-1", "--memory-max",
                                           "64M",  "--pids-max",       "50",     "--",
                                           "echo", "within its limits"};
    auto run = co_await run_cli(world.loop, args, environment);
    INFO("stdout: " << run.out << "\nstderr: " << run.err << "\nagent: " << world.agent.log());

    auto op = world.op();
    auto listed = co_await op.request("GET", "/api/v1/tasks");
    REQUIRE(listed.ok());
    auto tasks = protocol::decode_task_list(listed->body);
    REQUIRE(tasks.ok());
    REQUIRE(tasks->size() == 1);
    const std::string id = tasks->front().task.id;
    const std::string view = co_await op.task_json(id);
    CHECK_THAT(view, Catch::Contains(R"("limits":{"memory_max":67108864,"pids_max":50})"));
    CHECK(sqlite_query(world.hub_db(), "SELECT limits_json FROM tasks") ==
          R"({"memory_max":67108864,"pids_max":50})");

    if (tasks_get_controllers(world.agent.process().pid(), {"memory", "pids"})) {
      CHECK(run.exit_code == 0);
      CHECK(run.out == "within its limits\n");
      // A task that needs more than its memory_max is killed by the kernel,
      // and its final says so.
      const std::string hog =
          co_await world.submit_shell("x=$(head -c 300000000 /dev/zero | tr '\\\\0' a); echo never",
                                      R"("limits":{"memory_max":33554432})");
      const FinalView killed = co_await world.final_of(hog, "failed", 60'000);
      CHECK_THAT(killed.error, Catch::StartsWith("killed for memory: the kernel's OOM killer"));
      const std::string hog_view = co_await op.task_json(hog);
      CHECK_THAT(hog_view, Catch::Contains(R"("limit_exceeded":"memory_max")"));
      const std::string hog_out = co_await op.output(hog, "stdout");
      CHECK(hog_out.empty());
    } else {
      WARN(
          "the agent's cgroup hands no memory and pids controllers to tasks here: the refusal is "
          "tested, not the kernel's enforcement");
      CHECK(run.exit_code == 127);  // docs/cli.md: it could not start
      const FinalView refused = co_await world.final_of(id, "failed", 20'000);
      CHECK_THAT(refused.error,
                 Catch::StartsWith("task.limits.memory_max: this agent cannot enforce it: "));
      CHECK_THAT(run.err, Catch::Contains("task.limits.memory_max: this agent cannot enforce it"));
      CHECK(run.out.empty());  // the command never ran
      CHECK(sqlite_query(world.hub_db(),
                         "SELECT count(*) FROM attempts WHERE started_at IS NULL "
                         "OR started_at = ''") == "1");
    }
    // `tether status` shows the limits.
    const std::vector<std::string> status_args = {"status", id};
    auto status = co_await run_cli(world.loop, status_args, environment);
    CHECK_THAT(status.out, Catch::Contains("limits    memory_max 64 MiB, pids_max 50\n"));
  });
}

TEST_CASE("a limit the CLI cannot read is refused before anything is submitted",
          "[agent][e2e][limits]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::vector<std::string> environment = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token)};
    const std::vector<std::string> args = {"run",  "--agent", "edge-1", "--cpu-max",
                                           "half", "--",      "true"};
    auto run = co_await run_cli(world.loop, args, environment);
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Catch::Contains("--cpu-max: task.limits.cpu_max: 'half' is not a number "
                                        "of CPUs"));
    // Through the API, the same rule: 400 naming the field; nothing stored.
    auto op = world.op();
    auto answer = co_await op.request(
        "POST", "/api/v1/tasks",
        R"({"agent":"edge-1","command":{"argv":["true"]},"limits":{"memory_max":4096}})");
    REQUIRE(answer.ok());
    CHECK(answer->status == 400);
    CHECK_THAT(answer->body, Catch::Contains("task.limits.memory_max: must be from 1 MiB"));
    CHECK(sqlite_query(world.hub_db(), "SELECT count(*) FROM tasks") == "0");
  });
}
