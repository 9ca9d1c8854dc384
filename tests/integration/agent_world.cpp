#include "agent_world.hpp"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/sha256.hpp"

namespace tether::test {

std::string writer_binary() {
  return env_path("TETHER_TEST_WRITER");
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string writer_command(const std::vector<std::string>& args) {
  std::string command = shell_quote(writer_binary());
  for (const auto& arg : args)
    command += " " + shell_quote(arg);
  return command;
}

namespace {

// Runs a shell command and feeds its stdout to `sink`; the exit status.
int run_shell(const std::string& command, const std::function<void(std::string_view)>& sink) {
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::vector<char> buffer(1 << 16);
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    sink({buffer.data(), n});
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

ProgramRun run_program(const std::vector<std::string>& argv, bool with_stderr) {
  std::string command;
  for (const auto& arg : argv)
    command += (command.empty() ? "" : " ") + shell_quote(arg);
  if (with_stderr) command += " 2>&1";
  ProgramRun run;
  run.exit_code = run_shell(command, [&](std::string_view data) { run.out.append(data); });
  return run;
}

namespace {

// `paced` writes the same bytes at any pace: regenerate them at full speed.
std::vector<std::string> at_full_speed(std::vector<std::string> args) {
  if (args.size() == 5 && args[0] == "paced") args[4] = "0";
  return args;
}

}  // namespace

std::string generated(const std::vector<std::string>& args) {
  std::string out;
  const int code = run_shell(writer_command(at_full_speed(args)),
                             [&](std::string_view data) { out.append(data); });
  REQUIRE(code == 0);
  return out;
}

Digest generated_digest(const std::vector<std::string>& args) {
  protocol::Sha256 digest;
  uint64_t bytes = 0;
  const int code = run_shell(writer_command(at_full_speed(args)), [&](std::string_view data) {
    digest.update(data);
    bytes += data.size();
  });
  REQUIRE(code == 0);
  return {bytes, digest.hex_digest()};
}

std::string sqlite_query(const std::string& database, const std::string& sql) {
  auto run = run_program({"sqlite3", "-readonly", database, sql});
  INFO("sqlite3 " << database << " " << sql << "\n" << run.out);
  REQUIRE(run.exit_code == 0);
  while (!run.out.empty() && run.out.back() == '\n')
    run.out.pop_back();
  return run.out;
}

std::vector<int> living_members(int group) {
  std::vector<int> members;
  DIR* proc = ::opendir("/proc");
  REQUIRE(proc != nullptr);
  while (dirent* entry = ::readdir(proc)) {
    const int pid = std::atoi(entry->d_name);
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // "pid (comm) state ppid pgrp ...": comm may hold spaces, so parse after ')'.
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int parent = 0;
    int process_group = 0;
    if (std::sscanf(text.c_str() + close + 1, " %c %d %d", &state, &parent, &process_group) != 3)
      continue;
    if (process_group == group && state != 'Z' && state != 'X') members.push_back(pid);
  }
  ::closedir(proc);
  return members;
}

bool group_dies(int group, uint64_t timeout_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto members = living_members(group);
    if (members.empty()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          end - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    // A pidfd turns readable when its process exits: wait for that event.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, members.front(), 0));
    if (pidfd < 0) continue;  // gone meanwhile
    pollfd watch{pidfd, POLLIN, 0};
    (void)::poll(&watch, 1, static_cast<int>(left));
    ::close(pidfd);
  }
}

bool process_dies(int pid) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH;
  pollfd watch{pidfd, POLLIN, 0};
  const int ready = ::poll(&watch, 1, 5000);
  ::close(pidfd);
  return ready == 1;
}

FinalView read_final(const std::string& task_json) {
  INFO(task_json);
  auto document = protocol::parse_json_object(task_json, "task");
  REQUIRE(document.ok());
  const auto& task = *document;
  FinalView view;
  view.task_state = task["state"].GetString();
  REQUIRE(task["final"].IsObject());
  const auto& final_json = task["final"];
  view.status = final_json["status"].GetString();
  if (final_json["exit_code"].IsInt64()) view.exit_code = final_json["exit_code"].GetInt64();
  if (final_json["error"].IsString()) view.error = final_json["error"].GetString();
  view.out = {final_json["stdout"]["bytes"].GetUint64(),
              final_json["stdout"]["sha256"].GetString()};
  view.err = {final_json["stderr"]["bytes"].GetUint64(),
              final_json["stderr"]["sha256"].GetString()};
  view.out_dropped = final_json["stdout"]["dropped_bytes"].GetUint64();
  view.err_dropped = final_json["stderr"]["dropped_bytes"].GetUint64();
  view.verified = task["output_verified"].IsBool() && task["output_verified"].GetBool();
  if (task["verification_error"].IsString())
    view.verification_error = task["verification_error"].GetString();
  return view;
}

// ---------------------------------------------------------------------------
// AgentProcess

AgentProcess::AgentProcess(core::Loop& loop, std::string dir, std::string name, std::string token)
    : dir_(std::move(dir)), name_(std::move(name)), process_(loop) {
  const std::string token_file = dir_ + "/agent.token";
  set_token(token);
  settings_ = {{"agent", name_},      {"token_file", token_file}, {"state_dir", state_dir()},
               {"poll_wait_s", "10"}, {"shutdown_grace_s", "10"}, {"kill_grace_s", "2"},
               {"log_level", "info"}};
}

void AgentProcess::set_token(const std::string& token) {
  const std::string token_file = dir_ + "/agent.token";
  {
    std::ofstream out(token_file);
    out << token << "\n";
  }
  std::filesystem::permissions(
      token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

core::Co<void> AgentProcess::start() {
  {
    std::ofstream config(config_path());
    config << "# written by the test\n";
    for (const auto& [key, value] : settings_)
      config << key << " = " << value << "\n";
  }
  const size_t from = process_.log().size();
  std::vector<std::string> argv = {env_path("TETHER_AGENT"), "run", "--config", config_path()};
  if (inherited_fd_ >= 0) {
    std::string command = "exec " + std::to_string(inherited_fd_) + ">>" +
                          shell_quote(inherited_file_) + " " + shell_quote(argv[0]);
    for (size_t i = 1; i < argv.size(); ++i)
      command += " " + shell_quote(argv[i]);
    argv = {"/bin/sh", "-c", command};
  }
  if (!hosts_file_.empty()) argv = with_hosts_file(hosts_file_, argv);
  process_.start(argv, environment_);
  const bool started = co_await process_.wait_for_log("agent " + name_ + " for", 10000, from);
  INFO(process_.log());
  REQUIRE(started);
}

core::Co<int> AgentProcess::stop(int signum) {
  const int code = co_await process_.stop(signum);
  co_return code;
}

bool hosts_override_available() {
  return ::geteuid() == 0 && ::access("/usr/bin/unshare", X_OK) == 0;
}

std::vector<std::string> with_hosts_file(const std::string& hosts_file,
                                         const std::vector<std::string>& argv) {
  std::string inner = "mount --bind " + shell_quote(hosts_file) + " /etc/hosts && exec";
  for (const auto& arg : argv)
    inner += " " + shell_quote(arg);
  // A private mount namespace, so that the bind is seen by this command
  // alone. In a chroot (scripts/check-fresh-debian12) the root is no mount
  // point and unshare cannot make it private: there the namespace keeps the
  // propagation it inherits, used only if no mount in sight is shared (a
  // mount made under a shared one would be shared too). A minimal root may
  // have no /etc/hosts to bind over.
  const std::string script =
      "[ -e /etc/hosts ] || : > /etc/hosts; "
      "if unshare --mount --propagation private true 2>/dev/null; then propagation=private; "
      "elif ! grep -q ' shared:' /proc/self/mountinfo; then propagation=unchanged; "
      "else echo 'no private mount namespace possible here' >&2; exit 99; fi; "
      "exec unshare --mount --propagation $propagation -- /bin/sh -c " +
      shell_quote(inner);
  return {"/bin/sh", "-c", script};
}

// ---------------------------------------------------------------------------
// AgentWorld

AgentWorld::AgentWorld(AgentWorldOptions world_options)
    : hub(loop, data_dir, world_options.hub_args),
      agent(loop, dir.path(), "edge-1", agent_token),
      options(std::move(world_options)) {}

void AgentWorld::run(const std::function<core::Co<void>()>& body) {
  auto scenario = [&]() -> core::Co<void> {
    co_await hub.start();
    if (options.through_proxy) proxy = std::make_unique<TcpProxy>(hub.port());
    agent.set("hub_url", proxy ? proxy->url() : hub.url());
    std::exception_ptr failure;
    try {
      if (options.start_agent) co_await agent.start();
      co_await body();
    } catch (...) {
      failure = std::current_exception();
    }
    // Tear down even after a failure, or the children keep the loop alive.
    if (agent.process().running()) (void)co_await agent.stop(failure ? SIGKILL : SIGTERM);
    co_await hub.stop(failure ? SIGKILL : SIGTERM);
    proxy.reset();
    // Every other child the test started (nginx, a viewer): a failed test
    // must end, not wait for a process it meant to stop later.
    LoggedProcess::kill_all(loop);
    if (failure) std::rethrow_exception(failure);
  };
  auto print_logs = [this] {
    std::fprintf(stderr, "---- tether-hub log ----\n%s---- tether-agent log ----\n%s------\n",
                 hub.log().c_str(), agent.log().c_str());
  };
  try {
    core::run_to_completion(loop, scenario());
  } catch (...) {
    print_logs();
    throw;
  }
  // TETHER_TEST_LOGS=1 shows them for passing cases too, to see how they ran.
  if (const char* show = std::getenv("TETHER_TEST_LOGS"); show && *show == '1') print_logs();
}

core::Co<std::string> AgentWorld::submit_shell(std::string script, std::string extra_json) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("agent", "edge-1");
  json.key("command");
  json.begin_object();
  json.key("argv");
  json.begin_array();
  json.string("sh");
  json.string("-c");
  json.string(script);
  json.end_array();
  json.end_object();
  json.end_object();
  std::string body = json.str();
  if (!extra_json.empty()) body = body.substr(0, body.size() - 1) + "," + extra_json + "}";
  auto id = co_await op().submit(std::move(body));
  co_return id;
}

core::Co<FinalView> AgentWorld::final_of(std::string task_id, std::string state,
                                         uint64_t timeout_ms) {
  const bool reached = co_await op().wait_for_state(task_id, state, timeout_ms);
  auto json = co_await op().task_json(task_id);
  INFO(json);
  REQUIRE(reached);
  co_return read_final(json);
}

int AgentWorld::final_events(const std::string& task_id) const {
  return std::stoi(sqlite_query(hub_db(), "SELECT count(*) FROM events WHERE task_id = '" +
                                              task_id + "' AND kind = 'final'"));
}

}  // namespace tether::test
