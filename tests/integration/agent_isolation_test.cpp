// Tasks kept apart from the agent and from each other (issue [4/8],
// docs/operations.md "Task isolation"), tried the way an attacker with one
// task would: each case runs the real agent as root, as the packages' unit
// would run it with its capabilities, and checks that the task's attempt
// fails; the controls show the same attempt succeeding where the protection
// is absent (tasks sharing one uid), so the cases can fail.
//
// Needs root (to switch users) and the tether-task user (scripts/test and
// scripts/install-deps --test create it); skipped otherwise.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "agent_world.hpp"

using namespace tether;
using namespace tether::test;

namespace {

bool can_isolate() {
  if (::geteuid() != 0 || ::getpwnam("tether-task") == nullptr) {
    WARN("skipped: needs root and the tether-task user");
    return false;
  }
  return true;
}

// "isolation":{...} of the task's final, as the hub answers it.
std::string isolation_of(const std::string& task_json) {
  const size_t at = task_json.find("\"isolation\":");
  if (at == std::string::npos) return {};
  return task_json.substr(at, task_json.find('}', at) - at + 1);
}

// The pid the hub recorded for the task's running attempt (its command).
std::string attempt_pid(const AgentWorld& world, const std::string& task_id) {
  return sqlite_query(world.hub_db(), "SELECT pid FROM attempts WHERE task_id = '" + task_id + "'");
}

// Whether this process (root) finds a cgroup2 mount holding its own cgroup,
// as the agent looks for one (task_cgroups.hpp): not in a chroot, where
// /proc/self/mountinfo shows no mount outside the new root.
bool cgroup_v2_writable() {
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    const size_t separator = line.find(" - cgroup2 ");
    if (separator == std::string::npos) continue;
    std::istringstream fields(line.substr(0, separator));
    std::string field;
    std::vector<std::string> words;
    while (fields >> field)
      words.push_back(field);
    if (words.size() >= 5 && words[3] == "/") return ::access(words[4].c_str(), W_OK) == 0;
  }
  return false;
}

// A line of shell that runs `command` quietly and prints "NAME worked" or
// "NAME refused".
std::string attempt(const std::string& name, const std::string& command) {
  return "if " + command + " >/dev/null 2>&1; then echo " + name + " worked; else echo " + name +
         " refused; fi; ";
}

AgentWorldOptions hub_only() {
  AgentWorldOptions options;
  options.start_agent = false;
  return options;
}

}  // namespace

TEST_CASE("a task runs as tether-task with no capabilities, no_new_privs and a home of its own",
          "[agent][e2e][isolation]") {
  if (!can_isolate()) return;
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::string id = co_await world.submit_shell(
        "id -un; grep -E '^(CapInh|CapPrm|CapEff|CapAmb|NoNewPrivs)' /proc/self/status; "
        "echo \"$HOME\"; pwd; stat -c '%U %a' \"$HOME\"; touch \"$HOME/left-behind\"; "
        "grep '^0::' /proc/self/cgroup >&2");
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    const std::string out = co_await world.op().output(id, "stdout");
    const std::string home = world.agent.state_dir() + "/homes/attempt-";
    CHECK_THAT(out, Catch::StartsWith("tether-task\nCapInh:\t0000000000000000\n"
                                      "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
                                      "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n" +
                                      home));
    CHECK_THAT(out, Catch::EndsWith("tether-task 700\n"));
    const std::string task = co_await world.op().task_json(id);
    CHECK_THAT(isolation_of(task), Catch::Contains("\"user\":\"tether-task\""));
    // In a cgroup of its own from its first instruction, where there is one.
    const std::string cgroup = co_await world.op().output(id, "stderr");
    if (isolation_of(task).find("\"containment\":\"cgroup\"") != std::string::npos) {
      CHECK_THAT(cgroup, Catch::Contains("/tether-") && Catch::Contains(id));
    } else {
      CHECK_THAT(cgroup, !Catch::Contains("/tether-"));
    }
    // The home and what the task left in it are gone with the attempt.
    const ProgramRun homes = run_program({"ls", "-A", world.agent.state_dir() + "/homes"});
    CHECK(homes.out.empty());
  });
}

TEST_CASE("a task cannot read the agent's token or memory, open its outbox, or signal it",
          "[agent][e2e][isolation]") {
  if (!can_isolate()) return;
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::string agent_pid = std::to_string(world.agent.process().pid());
    const std::string token_file = world.dir.path() + "/agent.token";
    // Each line says whether its attempt worked; the attack is the whole script.
    const std::string outbox = shell_quote(world.agent.outbox_path());
    const std::string script = attempt("token", "cat " + shell_quote(token_file)) +
                               attempt("environ", "cat /proc/" + agent_pid + "/environ") +
                               attempt("mem", "(exec 3</proc/" + agent_pid + "/mem)") +
                               attempt("outbox_read", "cat " + outbox) +
                               attempt("outbox_write", "(: >> " + outbox + ")") +
                               attempt("stop", "kill -STOP " + agent_pid);
    const std::string id = co_await world.submit_shell(script);
    (void)co_await world.final_of(id, "succeeded", 20'000);
    const std::string out = co_await world.op().output(id, "stdout");
    CHECK(out ==
          "token refused\nenviron refused\nmem refused\noutbox_read refused\n"
          "outbox_write refused\nstop refused\n");
    // The agent was never stopped: it still runs tasks.
    const std::string next = co_await world.submit_shell("echo still here");
    (void)co_await world.final_of(next, "succeeded", 20'000);
  });
}

TEST_CASE("on a host that also runs the hub, a task can neither read nor write hub.db",
          "[agent][e2e][isolation]") {
  if (!can_isolate()) return;
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::string db = world.hub_db();
    const std::string tokens_before = sqlite_query(db, "SELECT count(*) FROM sqlite_master");
    const std::string id = co_await world.submit_shell(
        attempt("read", "cat " + shell_quote(db)) +
        attempt("write", "(: >> " + shell_quote(db) + ")") +
        attempt("create", "sqlite3 " + shell_quote(db) + " 'CREATE TABLE forged (x)'"));
    (void)co_await world.final_of(id, "succeeded", 20'000);
    const std::string out = co_await world.op().output(id, "stdout");
    CHECK(out == "read refused\nwrite refused\ncreate refused\n");
    CHECK(sqlite_query(db, "SELECT count(*) FROM sqlite_master") == tokens_before);
  });
}

TEST_CASE("with task_uid_range, a task cannot read another task's environment or signal it",
          "[agent][e2e][isolation]") {
  if (!can_isolate()) return;
  // Control first: with run_as alone both tasks are tether-task, and the
  // same attack works. Then the range stops it.
  for (const bool own_uids : {false, true}) {
    AgentWorld world(hub_only());
    if (own_uids) world.agent.set("task_uid_range", "61184-61191");
    world.run([&]() -> core::Co<void> {
      co_await world.agent.start();
      const std::string victim =
          co_await world.submit_shell("sleep 60", R"("env":{"DB_PASSWORD":"hunter2-secret"})");
      const bool running = co_await world.op().wait_for_state(victim, "running", 20'000);
      REQUIRE(running);
      const std::string pid = attempt_pid(world, victim);
      REQUIRE(std::atoi(pid.c_str()) > 0);
      const std::string id = co_await world.submit_shell("tr '\\0' '\\n' < /proc/" + pid +
                                                         "/environ | grep DB_PASSWORD; kill -0 " +
                                                         pid + " 2>/dev/null; echo signal=$?");
      (void)co_await world.final_of(id, "succeeded", 20'000);
      const std::string out = co_await world.op().output(id, "stdout");
      const std::string task = co_await world.op().task_json(id);
      if (own_uids) {
        CHECK(out == "signal=1\n");
        CHECK_THAT(isolation_of(task), Catch::Contains("\"user\":\"uid-6118"));
      } else {
        CHECK(out == "DB_PASSWORD=hunter2-secret\nsignal=0\n");
      }
      (void)co_await world.op().request("POST", "/api/v1/tasks/" + victim + "/cancel", "{}");
      (void)co_await world.final_of(victim, "cancelled", 30'000);
    });
  }
}

TEST_CASE("setsid and set -m descendants die on timeout and cancel, in a cgroup and without",
          "[agent][e2e][isolation]") {
  if (!can_isolate()) return;
  // A double fork into a new session, and a job in its own process group:
  // neither is in the command's process group any more.
  const std::string escapes =
      "setsid sh -c 'echo $$; exec sleep 300' </dev/null & "
      "bash -c 'set -m; sleep 300 </dev/null >/dev/null 2>&1 & echo $!'; sleep 300";
  if (!cgroup_v2_writable()) WARN("no writable cgroup v2 here: both runs take the subreaper path");
  for (const char* cgroup : {"auto", "off"}) {
    for (const bool cancel : {false, true}) {
      DYNAMIC_SECTION("cgroup = " << cgroup << (cancel ? ", cancel" : ", timeout")) {
        AgentWorld world(hub_only());
        world.agent.set("cgroup", cgroup);
        world.run([&]() -> core::Co<void> {
          co_await world.agent.start();
          const std::string id =
              co_await world.submit_shell(escapes, cancel ? "" : R"("timeout_s":2)");
          const bool printed = co_await world.op().wait_for_output(id, "stdout", 4, 20'000);
          REQUIRE(printed);
          std::string out = co_await world.op().output(id, "stdout");
          for (int i = 0; i < 200 && std::count(out.begin(), out.end(), '\n') < 2; ++i) {
            (void)co_await world.op().wait_for_output(id, "stdout", out.size() + 1, 5'000);
            out = co_await world.op().output(id, "stdout");
          }
          std::istringstream pids(out);
          int session_leader = 0;
          int job = 0;
          pids >> session_leader >> job;
          REQUIRE(session_leader > 0);
          REQUIRE(job > 0);
          if (cancel) {
            (void)co_await world.op().request("POST", "/api/v1/tasks/" + id + "/cancel", "{}");
          }
          (void)co_await world.final_of(id, cancel ? "cancelled" : "timed_out", 30'000);
          CHECK(process_dies(session_leader));
          CHECK(process_dies(job));
          const bool in_cgroup = std::string(cgroup) == "auto" && cgroup_v2_writable();
          const std::string expected =
              std::string("\"containment\":\"") + (in_cgroup ? "cgroup" : "subreaper") + "\"";
          const std::string task = co_await world.op().task_json(id);
          CHECK_THAT(isolation_of(task), Catch::Contains(expected));
        });
      }
    }
  }
}
