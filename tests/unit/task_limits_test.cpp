// Task limits (protocol/task_limits.hpp): the "limits" object of a task as
// docs/protocol.md 3 describes it, the flags that set them, and how the
// agent writes them into an attempt's cgroup and reads back what the kernel
// enforced (task_cgroups.hpp, task_confinement.hpp, the init's "limited"
// line). The cgroup files are written to a plain directory standing in for
// a delegated cgroup: the kernel's enforcement needs a cgroup v2 with the
// memory, cpu and pids controllers, which tests/integration covers where
// the host has one.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/attempt_limits.hpp"
#include "agent/task_cgroups.hpp"
#include "agent/task_confinement.hpp"
#include "agent/task_init_events.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/task_limits.hpp"
#include "protocol/task_spec.hpp"
#include "support.hpp"

using namespace tether;
using namespace tether::protocol;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string task_with_limits(const std::string& limits) {
  return R"({"task_id":"t-1","attempt_id":"t-1-1","command":{"argv":["true"]},"limits":)" + limits +
         "}";
}

}  // namespace

TEST_CASE("a task's limits travel as docs/protocol.md 3 writes them", "[limits]") {
  auto task =
      decode_task(task_with_limits(R"({"memory_max":67108864,"cpu_max":0.5,"pids_max":64})"));
  REQUIRE(task);
  CHECK(task->limits.memory_max == 67108864u);
  CHECK(task->limits.cpu_max_hundredths == 50u);
  CHECK(task->limits.pids_max == 64u);
  const std::string encoded = encode_task(*task);
  CHECK_THAT(encoded,
             Catch::Contains(R"("limits":{"memory_max":67108864,"cpu_max":0.5,"pids_max":64})"));
  auto again = decode_task(encoded);
  REQUIRE(again);
  CHECK(again->limits == task->limits);

  // None set: no "limits" member, and an empty object reads as none.
  auto plain = decode_task(task_with_limits("{}"));
  REQUIRE(plain);
  CHECK_FALSE(plain->limits.any());
  CHECK_THAT(encode_task(*plain), !Catch::Contains("limits"));
  CHECK(limits_json(plain->limits) == "{}");
  auto stored = read_limits_json(R"({"cpu_max":1.25})");
  REQUIRE(stored);
  CHECK(stored->cpu_max_hundredths == 125u);
  CHECK(limits_json(*stored) == R"({"cpu_max":1.25})");
}

TEST_CASE("a limit out of range or of the wrong type is refused naming it", "[limits]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"memory_max":1000})", "task.limits.memory_max: must be from 1 MiB"},
      {R"({"memory_max":"64M"})", "task.limits.memory_max: expected a non-negative integer"},
      {R"({"cpu_max":0})", "task.limits.cpu_max: must be from 0.01 to 1024 CPUs"},
      {R"({"cpu_max":0.005})", "task.limits.cpu_max"},
      {R"({"cpu_max":2000})", "task.limits.cpu_max"},
      {R"({"cpu_max":"1"})", "task.limits.cpu_max: expected a number of CPUs, got string"},
      {R"({"pids_max":0})", "task.limits.pids_max: must be from 1 to 4194304"},
      {R"({"pids_max":-3})", "task.limits.pids_max"},
      {R"([1])", "task.limits: expected an object"},
  };
  for (const auto& [limits, message] : cases) {
    INFO(limits);
    auto task = decode_task(task_with_limits(limits));
    REQUIRE_FALSE(task);
    CHECK_THAT(task.error().message, Catch::Contains(message));
  }
  // The operator's submission takes the same object, and its view shows it.
  auto submitted =
      decode_submit(R"({"agent":"a","command":{"argv":["true"]},"limits":{"memory_max":"big"}})");
  REQUIRE_FALSE(submitted);
  CHECK_THAT(submitted.error().message, Catch::Contains("task.limits.memory_max"));
  auto accepted =
      decode_submit(R"({"agent":"a","command":{"argv":["true"]},"limits":{"pids_max":10}})");
  REQUIRE(accepted);
  CHECK(accepted->spec.limits.pids_max == 10u);
}

TEST_CASE("limits as people type them: sizes with K M G T, CPUs with two decimals", "[limits]") {
  TaskLimits limits;
  REQUIRE(set_limit("memory_max", "512M", limits));
  CHECK(limits.memory_max == 512u << 20);
  REQUIRE(set_limit("memory_max", "2097152", limits));
  CHECK(limits.memory_max == 2097152u);
  REQUIRE(set_limit("cpu_max", "1.5", limits));
  CHECK(limits.cpu_max_hundredths == 150u);
  REQUIRE(set_limit("cpu_max", "0.05", limits));
  CHECK(limits.cpu_max_hundredths == 5u);
  REQUIRE(set_limit("pids_max", "100", limits));
  CHECK(limits.pids_max == 100u);
  const TaskLimits before = limits;
  for (const auto& [limit, text] :
       std::vector<std::pair<std::string, std::string>>{{"memory_max", "5X"},
                                                        {"memory_max", "1K"},  // below 1 MiB
                                                        {"memory_max", "99999999999T"},
                                                        {"memory_max", ""},
                                                        {"cpu_max", "-1"},
                                                        {"cpu_max", "0.001"},
                                                        {"cpu_max", "1e3"},
                                                        {"cpu_max", "."},
                                                        {"pids_max", "0"},
                                                        {"pids_max", "ten"},
                                                        {"swap_max", "1"}}) {
    INFO(limit << " " << text);
    auto set = set_limit(limit, text, limits);
    REQUIRE_FALSE(set);
    CHECK_THAT(set.error().message, Catch::StartsWith("task.limits." + limit + ": "));
    CHECK(limits == before);  // a refused flag changes nothing
  }
  CHECK(format_byte_size(64u << 20) == "64 MiB");
  CHECK(format_byte_size(1536u << 20) == "1.5 GiB");
  CHECK(format_byte_size(1000) == "1000 bytes");
  CHECK(format_cpus(150) == "1.5");
  CHECK(format_cpus(5) == "0.05");
  CHECK(format_cpus(200) == "2");
}

TEST_CASE("an attempt's cgroup gets memory.max, cpu.max and pids.max", "[limits][cgroup]") {
  test::TempDir base("tether-cgroup");
  std::ofstream(base.path + "/cgroup.subtree_control") << "cpu memory pids\n";
  const agent::TaskCgroups cgroups = agent::TaskCgroups::at(base.path);
  REQUIRE(cgroups.available());
  CHECK(cgroups.controllers() == std::set<std::string>{"cpu", "memory", "pids"});
  TaskLimits limits;
  limits.memory_max = 64u << 20;
  limits.cpu_max_hundredths = 50;
  limits.pids_max = 32;
  auto cgroup = cgroups.create("attempt-1", limits);
  REQUIRE(cgroup);
  CHECK_THAT(*cgroup, Catch::StartsWith(base.path + "/tether-") && Catch::EndsWith("-attempt-1"));
  CHECK(read_text(*cgroup + "/memory.max") == "67108864");
  CHECK(read_text(*cgroup + "/cpu.max") == "50000 100000");  // 50 ms of each 100 ms
  CHECK(read_text(*cgroup + "/pids.max") == "32");
  // No limit: no file written (the kernel's default, "max", stays).
  auto plain = cgroups.create("attempt-2");
  REQUIRE(plain);
  CHECK(std::filesystem::is_empty(*plain));
}

TEST_CASE("a limit the agent cannot enforce fails the attempt naming it", "[limits][cgroup]") {
  TaskLimits memory;
  memory.memory_max = 64u << 20;
  TaskLimits cpu;
  cpu.cpu_max_hundredths = 100;

  // No cgroup at all: the reason the agent found at start.
  auto none = agent::TaskCgroups::none("this host has no cgroup v2 hierarchy").check(memory);
  REQUIRE_FALSE(none);
  CHECK(none.error().code == "limit_unavailable");
  CHECK_THAT(none.error().message,
             Catch::StartsWith("task.limits.memory_max: this agent cannot enforce it: this host "
                               "has no cgroup v2 hierarchy"));
  CHECK(agent::TaskCgroups::none("x").check(TaskLimits{}));  // no limit: nothing to enforce

  // A cgroup without the controller: named, with what is enabled; nothing is created.
  test::TempDir base("tether-cgroup");
  std::ofstream(base.path + "/cgroup.subtree_control") << "memory pids\n";
  const agent::TaskCgroups cgroups = agent::TaskCgroups::at(base.path);
  CHECK(cgroups.check(memory));
  auto refused = cgroups.create("attempt-1", cpu);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message,
             Catch::StartsWith("task.limits.cpu_max: this agent cannot enforce it: the cpu "
                               "controller is not enabled in " +
                               base.path + "/cgroup.subtree_control (enabled: memory pids"));
  CHECK(std::filesystem::directory_iterator(base.path)->path().filename() ==
        "cgroup.subtree_control");
  CHECK(std::distance(std::filesystem::directory_iterator(base.path),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("the init reads what the kernel enforced from memory.events and pids.events",
          "[limits][cgroup]") {
  test::TempDir cgroup("tether-cgroup");
  std::ofstream(cgroup.path + "/memory.events")
      << "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
  std::ofstream(cgroup.path + "/pids.events") << "max 5\n";
  CHECK(agent::confinement::cgroup_event_count(cgroup.path.c_str(), "memory.events", "oom_kill") ==
        1);
  CHECK(agent::confinement::cgroup_event_count(cgroup.path.c_str(), "memory.events", "max") == 12);
  CHECK(agent::confinement::cgroup_event_count(cgroup.path.c_str(), "memory.events", "oom") == 2);
  CHECK(agent::confinement::cgroup_event_count(cgroup.path.c_str(), "pids.events", "max") == 5);
  CHECK(agent::confinement::cgroup_event_count(cgroup.path.c_str(), "memory.events", "gone") == -1);
  CHECK(agent::confinement::cgroup_event_count(cgroup.path.c_str(), "cpu.stat", "x") == -1);

  auto line = agent::parse_task_init_line("limited memory_max 3");
  REQUIRE(line);
  CHECK(line->kind == agent::TaskInitEvent::Kind::kLimited);
  CHECK(line->limit == "memory_max");
  CHECK(line->times == 3);
  CHECK(agent::parse_task_init_line("limited pids_max 1"));
  CHECK_FALSE(agent::parse_task_init_line("limited cpu_max 1"));
  CHECK_FALSE(agent::parse_task_init_line("limited memory_max 0"));
  CHECK_FALSE(agent::parse_task_init_line("limited memory_max"));
}

TEST_CASE("a process killed for memory marks the final limit_exceeded, first in its error",
          "[limits]") {
  TaskLimits limits;
  limits.memory_max = 32u << 20;
  limits.pids_max = 8;
  FinalReport report;
  report.error = "killed by SIGKILL";
  auto oom = agent::parse_task_init_line("limited memory_max 1");
  auto forks = agent::parse_task_init_line("limited pids_max 4");
  REQUIRE(oom);
  REQUIRE(forks);
  agent::report_enforced_limits(report, {*oom, *forks}, limits);
  CHECK(report.limit_exceeded == "memory_max");
  CHECK(report.error ==
        "killed for memory: the kernel's OOM killer ended 1 process of the task at memory_max "
        "(32 MiB); pids_max (8) refused 4 forks; killed by SIGKILL");
  // An event for a limit the task did not set changes nothing.
  FinalReport other;
  agent::report_enforced_limits(other, {*oom}, TaskLimits{});
  CHECK(other.limit_exceeded.empty());
  CHECK(other.error.empty());
}
