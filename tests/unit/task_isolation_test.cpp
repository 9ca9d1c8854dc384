// Task isolation pieces (task_users, task_home, task_confinement, the init's
// line protocol) and `tether-agent exec` with the isolation flags. The cases
// that switch users need root and the tether-task user (scripts/test makes
// it); they say so and are skipped elsewhere.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/agent_config.hpp"
#include "agent/task_confinement.hpp"
#include "agent/task_home.hpp"
#include "agent/task_init_events.hpp"
#include "agent/task_users.hpp"
#include "support.hpp"

using namespace tether;
using namespace tether::agent;

namespace {

bool can_switch_users() {
  if (::geteuid() != 0 || ::getpwnam("tether-task") == nullptr) {
    WARN("skipped: needs root and the tether-task user");
    return false;
  }
  return true;
}

// The first uid from 61184 up that no user holds, and the next 7.
uint32_t free_uid_block() {
  uint32_t first = 61184;
  for (uint32_t uid = first; uid < first + 8; ++uid) {
    if (::getpwuid(uid)) first = uid + 1;
  }
  return first;
}

// The stdout bytes of exec's JSON lines (UTF-8 frames only).
std::string stdout_of(const std::string& json_lines) {
  std::istringstream lines(json_lines);
  std::string out;
  for (std::string line; std::getline(lines, line);) {
    rapidjson::Document frame;
    frame.Parse(line.c_str());
    if (!frame.IsObject() || std::string(frame["type"].GetString()) != "task.output") continue;
    if (std::string(frame["stream"].GetString()) == "stdout") out += frame["data"].GetString();
  }
  return out;
}

}  // namespace

TEST_CASE("task_uid_range parses FIRST-LAST and nothing else", "[isolation]") {
  auto range = parse_uid_range("61184-61439");
  REQUIRE(range);
  CHECK(range->first == 61184);
  CHECK(range->second == 61439);
  for (const char* bad : {"", "61184", "61439-61184", "-5", "5-", "a-b", "1-2-3", "1 - 2"}) {
    INFO(bad);
    CHECK_FALSE(parse_uid_range(bad));
  }
}

TEST_CASE("agent.conf takes run_as, task_uid_range, cgroup and task_home_root", "[isolation]") {
  AgentConfig config;
  REQUIRE(apply_config_text(config,
                            "run_as = builder\ntask_uid_range = 70000-70009\ncgroup = off\n"
                            "task_home_root = /srv/homes\n",
                            "agent.conf"));
  CHECK(config.run_as == "builder");
  CHECK(config.task_uid_first == 70000);
  CHECK(config.task_uid_last == 70009);
  CHECK_FALSE(config.cgroup);
  CHECK(config.task_home_root == "/srv/homes");
  AgentConfig defaults;
  CHECK(defaults.run_as == "tether-task");
  CHECK(defaults.cgroup);
  auto bad = apply_config_text(defaults, "cgroup = maybe\n", "agent.conf");
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("cgroup") && Catch::Contains("auto or off"));
  auto bad_range = apply_config_text(defaults, "task_uid_range = 9-1\n", "agent.conf");
  REQUIRE_FALSE(bad_range);
  CHECK_THAT(bad_range.error().message, Catch::Contains("task_uid_range"));
}

TEST_CASE("run_as and task_uid_range are refused with a reason", "[isolation]") {
  if (!can_switch_users()) return;
  std::string notice;
  TaskUsersSettings unknown;
  unknown.run_as = "no-such-user-here";
  auto missing = TaskUsers::resolve(unknown, notice);
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message,
             Catch::Contains("no user 'no-such-user-here'") && Catch::Contains("useradd"));

  TaskUsersSettings root_range;
  root_range.uid_first = 0;
  root_range.uid_last = 10;
  auto with_root = TaskUsers::resolve(root_range, notice);
  REQUIRE_FALSE(with_root);
  CHECK_THAT(with_root.error().message, Catch::Contains("uid 0"));

  const passwd* task_user = ::getpwnam("tether-task");
  TaskUsersSettings taken;
  taken.uid_first = task_user->pw_uid;
  taken.uid_last = task_user->pw_uid;
  auto overlapping = TaskUsers::resolve(taken, notice);
  REQUIRE_FALSE(overlapping);
  CHECK_THAT(overlapping.error().message, Catch::Contains("belongs to user 'tether-task'"));

  TaskUsersSettings small;
  small.uid_first = free_uid_block();
  small.uid_last = small.uid_first + 1;
  small.max_concurrent_tasks = 4;
  auto too_small = TaskUsers::resolve(small, notice);
  REQUIRE_FALSE(too_small);
  CHECK_THAT(too_small.error().message, Catch::Contains("fewer than max_concurrent_tasks"));
}

TEST_CASE("a uid range hands each running attempt a uid of its own, and takes it back",
          "[isolation]") {
  if (!can_switch_users()) return;
  TaskUsersSettings settings;
  settings.uid_first = free_uid_block();
  settings.uid_last = settings.uid_first + 1;
  std::string notice;
  auto users = TaskUsers::resolve(settings, notice);
  REQUIRE(users);
  auto first = users->acquire();
  auto second = users->acquire();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->uid != second->uid);
  CHECK(first->gid == first->uid);
  CHECK(first->groups.empty());
  CHECK_FALSE(users->acquire());  // both held
  users->release(*first);
  auto again = users->acquire();
  REQUIRE(again);
  CHECK(again->uid == first->uid);
}

TEST_CASE("run_as gives the named user with its groups", "[isolation]") {
  if (!can_switch_users()) return;
  TaskUsersSettings settings;
  std::string notice;
  auto users = TaskUsers::resolve(settings, notice);
  REQUIRE(users);
  CHECK(notice.empty());
  auto user = users->acquire();
  REQUIRE(user);
  const passwd* entry = ::getpwnam("tether-task");
  CHECK(user->switch_user);
  CHECK(user->uid == entry->pw_uid);
  CHECK(user->gid == entry->pw_gid);
  CHECK(user->name == "tether-task");
}

TEST_CASE("the home root must be reachable by the task's user", "[isolation]") {
  if (!can_switch_users()) return;
  test::TempDir dir("tether-homes");  // 0700, root's
  TaskUser user;
  user.switch_user = true;
  user.uid = ::getpwnam("tether-task")->pw_uid;
  user.gid = ::getpwnam("tether-task")->pw_gid;
  user.name = "tether-task";
  auto refused = TaskHome::prepare_root(dir.path + "/homes", user);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message,
             Catch::Contains(dir.path + " is mode 0700") && Catch::Contains("task_home_root"));
  ::chmod(dir.path.c_str(), 0711);
  REQUIRE(TaskHome::prepare_root(dir.path + "/homes", user));
  struct stat info {};
  REQUIRE(::stat((dir.path + "/homes").c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0711);
  {
    auto home = TaskHome::create(dir.path + "/homes", "a-1", user);
    REQUIRE(home);
    REQUIRE(::stat(home->path().c_str(), &info) == 0);
    CHECK(info.st_uid == user.uid);
    CHECK((info.st_mode & 07777) == 0700);
  }
  CHECK_FALSE(std::filesystem::exists(dir.path + "/homes/attempt-a-1"));
}

TEST_CASE("emptying a home removes deep trees, unreadable directories and links, not targets",
          "[isolation]") {
  test::TempDir dir("tether-empty");
  const std::string home = dir.path + "/home";
  const std::string outside = dir.path + "/outside";
  std::filesystem::create_directories(home + "/a/b/c");
  std::filesystem::create_directories(outside);
  std::ofstream(home + "/a/b/c/file") << "x";
  std::ofstream(outside + "/kept") << "y";
  std::filesystem::create_directory_symlink(outside, home + "/link");
  ::chmod((home + "/a/b").c_str(), 0);
  confinement::empty_directory(home.c_str());
  CHECK(std::filesystem::is_empty(home));
  CHECK(std::filesystem::exists(outside + "/kept"));
}

TEST_CASE("the init says which step of a start failed", "[isolation]") {
  auto cgroup = parse_task_init_line("failed 13 cgroup");
  REQUIRE(cgroup);
  CHECK(cgroup->kind == TaskInitEvent::Kind::kFailed);
  CHECK(cgroup->error == 13);
  CHECK(cgroup->stage == "cgroup");
  auto user = parse_task_init_line("failed 1 user");
  REQUIRE(user);
  CHECK(user->stage == "user");
  CHECK_FALSE(parse_task_init_line("failed 2"));
  CHECK_FALSE(parse_task_init_line("failed 2 somewhere"));
}

TEST_CASE("tether-agent exec --run-as runs the command as that user with no capabilities",
          "[isolation][exec]") {
  if (!can_switch_users()) return;
  const std::string output = test::shell_output(
      "'" + test::agent_binary() +
      "' exec --run-as tether-task -- /bin/sh -c 'id -un; grep -E \"^Cap(Prm|Eff|Amb)\" "
      "/proc/self/status; cat /proc/1/environ >/dev/null 2>&1; echo environ=$?' 2>/dev/null");
  CHECK(stdout_of(output) ==
        "tether-task\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
        "CapAmb:\t0000000000000000\nenviron=1\n");
  CHECK_THAT(output, Catch::Contains("\"isolation\":{\"user\":\"tether-task\""));
}

TEST_CASE("a start that cannot switch user fails naming the user", "[isolation][exec]") {
  if (!can_switch_users()) return;
  // A cwd the task's user may enter is checked by the agent as root; a
  // program only root may run is not: exec fails as the task's user.
  test::TempDir dir("tether-private");
  const std::string program = dir.path + "/only-root";
  std::ofstream(program) << "#!/bin/sh\necho ran\n";
  ::chmod(program.c_str(), 0700);
  const std::string output = test::shell_output(
      "'" + test::agent_binary() + "' exec --run-as tether-task -- " + program + " 2>/dev/null");
  CHECK_THAT(output,
             Catch::Contains("\"status\":\"failed\"") && Catch::Contains("permission denied"));
  CHECK_THAT(output, !Catch::Contains("ran"));
}

TEST_CASE(
    "an agent of its own user with only the unit's four capabilities runs tasks as tether-task",
    "[isolation][exec]") {
  if (!can_switch_users()) return;
  // As the packaged unit starts it: an unprivileged user (here nobody) with
  // CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_CHOWN as ambient capabilities.
  // The task's home is 0700 and the task's: only the task itself enters it.
  test::TempDir dir("tether-unit-mode");
  ::chmod(dir.path.c_str(), 0777);
  const std::string output = test::shell_output(
      "setpriv --reuid=nobody --regid=nogroup --clear-groups "
      "--inh-caps=+setuid,+setgid,+kill,+chown --ambient-caps=+setuid,+setgid,+kill,+chown '" +
      test::agent_binary() + "' exec --run-as tether-task --home-root " + dir.path +
      "/homes -- /bin/sh -c 'id -un; pwd; touch \"$HOME/x\" && echo wrote' 2>/dev/null");
  CHECK_THAT(stdout_of(output), Catch::StartsWith("tether-task\n" + dir.path + "/homes/attempt-") &&
                                    Catch::EndsWith("\nwrote\n"));
  CHECK_THAT(output, Catch::Contains("\"status\":\"succeeded\""));
  CHECK(std::filesystem::is_empty(dir.path + "/homes"));
}

TEST_CASE("an agent without those capabilities runs tasks as itself and says so",
          "[isolation][exec]") {
  if (!can_switch_users()) return;
  test::TempDir dir("tether-laptop");
  ::chmod(dir.path.c_str(), 0777);
  const std::string agent = "setpriv --reuid=nobody --regid=nogroup --clear-groups '" +
                            test::agent_binary() + "' exec --home-root " + dir.path + "/homes ";
  const std::string output = test::shell_output(agent + "--cgroup off -- /bin/sh -c 'id -un' 2>&1");
  CHECK_THAT(output, Catch::Contains("tasks run as this agent's own user") &&
                         Catch::Contains("without CAP_SETUID"));
  CHECK(stdout_of(output) == "nobody\n");
  // An explicit run_as it cannot honour stops it instead.
  const std::string refused =
      test::shell_output(agent + "--run-as tether-task -- /bin/true 2>&1; echo status=$?");
  CHECK_THAT(refused,
             Catch::Contains("run_as: this agent runs as nobody") && Catch::Contains("status=2"));
}

TEST_CASE("without a cgroup, the init stops the command even where /proc hides it",
          "[isolation][exec]") {
  if (!can_switch_users()) return;
  // The unit's ProtectProc=invisible: a /proc with hidepid=invisible, where
  // the agent's user (here nobody) sees none of tether-task's processes. (If
  // the command were not stopped, `timeout` ends the exec without a final.)
  test::TempDir dir("tether-hidepid");
  ::chmod(dir.path.c_str(), 0777);
  const std::string output = test::shell_output(
      // Only /proc is made private: in a chroot (fresh-debian12) / is no
      // mount point, and --propagation private would fail on it.
      "timeout 30 unshare --mount --propagation unchanged sh -c 'mount --make-private /proc && "
      "mount -t proc -o hidepid=invisible proc /proc && setpriv --reuid=nobody --regid=nogroup "
      "--clear-groups "
      "--inh-caps=+setuid,+setgid,+kill,+chown --ambient-caps=+setuid,+setgid,+kill,+chown " +
      test::agent_binary() + " exec --timeout 1 --grace-ms 200 --run-as tether-task --home-root " +
      dir.path + "/homes -- /bin/sh -c \"exec sleep 300\"' 2>/dev/null");
  CHECK_THAT(output, Catch::Contains("\"status\":\"timed_out\"") &&
                         Catch::Contains("SIGTERM sent to 1 process"));
}
