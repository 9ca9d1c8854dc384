// The plan the agent hands tether-task-init (task_init_plan.hpp): what goes
// in comes out, anything else is refused, and the real init refuses it too.
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/task_init_plan.hpp"
#include "support.hpp"

using namespace tether::agent;

namespace {

// A decoded plan, released with this scope.
struct DecodedPlan : TaskInitPlan {
  DecodedPlan() = default;
  DecodedPlan(const DecodedPlan&) = delete;
  DecodedPlan& operator=(const DecodedPlan&) = delete;
  ~DecodedPlan() { release_task_init_plan(*this); }
};

// Decodes a copy of `bytes` (the decoder points into its input).
bool decode(std::string bytes, DecodedPlan& plan, std::vector<char>& storage) {
  release_task_init_plan(plan);
  storage.assign(bytes.begin(), bytes.end());
  return decode_task_init_plan(storage.data(), storage.size(), plan);
}

std::string strings(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& part : parts) {
    out += part;
    out.push_back('\0');
  }
  return out;
}

}  // namespace

TEST_CASE("a task init plan comes back as it went in", "[init_plan]") {
  char path[] = "/bin/sh";
  char arg0[] = "sh";
  char arg1[] = "-c";
  char arg2[] = "echo 'two words' \"and\ttabs\"";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  char env0[] = "PATH=/usr/bin:/bin";
  char env1[] = "EMPTY=";
  char* envp[] = {env0, env1, nullptr};
  const gid_t groups[] = {3001, 3002};
  TaskInitPlan plan;
  plan.path = path;
  plan.argv = argv;
  plan.envp = envp;
  plan.cgroup = "/sys/fs/cgroup/tether/a1";
  plan.watch_memory = true;
  plan.cwd = "/srv/work dir";
  plan.home = "/var/lib/tether-agent/homes/a1";
  plan.switch_user = true;
  plan.uid = 61000;
  plan.gid = 61000;
  plan.groups = groups;
  plan.group_count = 2;

  DecodedPlan back;
  std::vector<char> storage;
  REQUIRE(decode(encode_task_init_plan(plan), back, storage));
  CHECK(std::string(back.path) == path);
  REQUIRE(back.argv[3] == nullptr);
  CHECK(std::string(back.argv[2]) == arg2);
  REQUIRE(back.envp[2] == nullptr);
  CHECK(std::string(back.envp[1]) == "EMPTY=");
  CHECK(std::string(back.cgroup) == plan.cgroup);
  CHECK(back.watch_memory);
  CHECK_FALSE(back.watch_pids);
  CHECK(std::string(back.cwd) == plan.cwd);
  CHECK(std::string(back.home) == plan.home);
  CHECK(back.switch_user);
  CHECK(back.uid == 61000);
  CHECK(back.gid == 61000);
  REQUIRE(back.group_count == 2);
  CHECK(back.groups[1] == 3002);
}

TEST_CASE("a plan without the optional parts leaves them unset", "[init_plan]") {
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  char* envp[] = {nullptr};
  TaskInitPlan plan;
  plan.path = "/bin/true";
  plan.argv = argv;
  plan.envp = envp;
  DecodedPlan back;
  std::vector<char> storage;
  REQUIRE(decode(encode_task_init_plan(plan), back, storage));
  CHECK(back.envp[0] == nullptr);
  CHECK(back.cgroup == nullptr);
  CHECK(back.cwd == nullptr);
  CHECK(back.home == nullptr);
  CHECK_FALSE(back.switch_user);
}

TEST_CASE("anything but a whole plan of this version is refused", "[init_plan]") {
  const std::string magic = kTaskInitPlanMagic;
  const std::vector<std::string> good = {magic,  "path", "/bin/true", "argv", "1",
                                         "true", "envp", "0",         "end"};
  DecodedPlan plan;
  std::vector<char> storage;
  REQUIRE(decode(strings(good), plan, storage));

  auto with = [&](size_t index, const std::string& value) {
    auto parts = good;
    parts[index] = value;
    return strings(parts);
  };
  const std::string whole = strings(good);
  CHECK_FALSE(decode(with(0, "tether-task-init-plan 2"), plan, storage));  // another version
  CHECK_FALSE(decode(whole.substr(0, whole.size() - 4), plan, storage));   // no "end"
  CHECK_FALSE(decode(whole.substr(0, whole.size() - 1), plan, storage));   // "end" unterminated
  CHECK_FALSE(decode(with(4, "2"), plan, storage));                        // argv says two, has one
  CHECK_FALSE(decode(with(4, "0"), plan, storage));                        // no argv[0]
  CHECK_FALSE(decode(with(4, "1x"), plan, storage));                       // not a number
  CHECK_FALSE(decode(with(7, "-1"), plan, storage));                       // nor this
  CHECK_FALSE(decode(with(1, "paths"), plan, storage));                    // an unknown field
  CHECK_FALSE(decode(with(2, ""), plan, storage));                         // an empty path
  CHECK_FALSE(decode(strings({magic, "argv", "1", "true", "envp", "0", "end"}), plan,
                     storage));  // no path
  CHECK_FALSE(decode(strings({magic, "path", "/bin/true", "argv", "1", "true", "envp", "0", "user",
                              "1000", "1000", "99999999", "end"}),
                     plan, storage));  // more groups than bytes
  CHECK_FALSE(decode("", plan, storage));
}

TEST_CASE("tether-task-init given no readable plan says so and starts nothing", "[init_plan]") {
  const char* init = std::getenv("TETHER_TASK_INIT");
  REQUIRE(init != nullptr);
  int control[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control) == 0);
  const int plan = ::memfd_create("plan", MFD_CLOEXEC);
  REQUIRE(plan >= 0);
  const std::string garbage = "tether-task-init-plan 0";
  REQUIRE(::write(plan, garbage.data(), garbage.size()) == static_cast<ssize_t>(garbage.size()));
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(control[1], 3);
    ::dup2(plan, 4);
    ::execl(init, init, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  REQUIRE(pid > 0);
  ::close(control[1]);
  ::close(plan);
  std::string said;
  char buffer[256];
  ssize_t n;
  while ((n = ::read(control[0], buffer, sizeof buffer)) > 0)
    said.append(buffer, static_cast<size_t>(n));
  ::close(control[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(said == "failed " + std::to_string(EPROTO) + " plan\n");
  CHECK(WIFEXITED(status));
}

TEST_CASE("an agent whose tether-task-init is missing refuses to run tasks, naming it",
          "[init_plan]") {
  // A copy of the agent in a directory of its own: no init beside it, and the
  // installed path of a test build is not there either.
  tether::test::TempDir dir("tether-no-init");
  const std::string agent = dir.path + "/tether-agent";
  std::filesystem::copy_file(tether::test::agent_binary(), agent);
  std::filesystem::permissions(agent, std::filesystem::perms::owner_all);
  const std::string output =
      tether::test::shell_output("'" + agent + "' exec -- /bin/true 2>&1; echo status=$?");
  CHECK_THAT(output, Catch::Contains("tether-task-init, the task init every task starts through") &&
                         Catch::Contains("reinstall tether-agent") && Catch::Contains("status=2"));
}
