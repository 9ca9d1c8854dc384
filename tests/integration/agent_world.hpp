// End-to-end fixtures: a real tether-hub and a real tether-agent on
// 127.0.0.1, optionally with a TcpProxy between them, plus the checks the
// agent tests share (what the generator wrote, what the hub stored, the
// final, the outbox as sqlite3 shows it).
#pragma once

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <optional>

#include "core/run.hpp"
#include "harness.hpp"
#include "tcp_proxy.hpp"

namespace tether::test {

std::string writer_binary();
// A shell word: `text` in single quotes.
std::string shell_quote(const std::string& text);
// The shell command that runs tether-test-writer with `args`.
std::string writer_command(const std::vector<std::string>& args);

// Runs a program (argv[0] looked up in PATH) to completion; its stdout (and
// stderr with `with_stderr`) and exit status.
struct ProgramRun {
  std::string out;
  int exit_code = -1;
};
ProgramRun run_program(const std::vector<std::string>& argv, bool with_stderr = false);

// What tether-test-writer writes for `args`: the bytes themselves.
std::string generated(const std::vector<std::string>& args);
// The same as a byte count and SHA-256, for outputs too large to compare.
struct Digest {
  uint64_t bytes = 0;
  std::string sha256;
};
Digest generated_digest(const std::vector<std::string>& args);

// `sqlite3 -readonly DB SQL` (the operator's tool, not our code); its
// output with the trailing newline removed. REQUIREs exit 0.
std::string sqlite_query(const std::string& database, const std::string& sql);

// Whether this process may give a child its own /etc/hosts (unshare --mount
// then mount --bind: root, as in CI and on the fresh-Debian check).
bool hosts_override_available();
// argv that runs `argv` with `hosts_file` bind-mounted over /etc/hosts in a
// private mount namespace.
std::vector<std::string> with_hosts_file(const std::string& hosts_file,
                                         const std::vector<std::string>& argv);

// Processes in process group `group` that have not exited (zombies count as
// exited).
std::vector<int> living_members(int group);
// Waits until no member of `group` is alive; false after `timeout_ms`.
bool group_dies(int group, uint64_t timeout_ms);
// Waits (through a pidfd, at most 5 s) until process `pid` has exited.
bool process_dies(int pid);

// The final of a task, as GET /api/v1/tasks/{id} shows it.
struct FinalView {
  std::string task_state;
  std::string status;
  std::optional<int64_t> exit_code;
  std::string error;
  Digest out;
  Digest err;
  uint64_t out_dropped = 0;
  uint64_t err_dropped = 0;
  bool verified = false;
  std::string verification_error;
};
FinalView read_final(const std::string& task_json);

// A tether-agent process with its own config file, token file and state_dir.
class AgentProcess {
 public:
  AgentProcess(core::Loop& loop, std::string dir, std::string name, std::string token);

  // Replaces the token in the agent's token file.
  void set_token(const std::string& token);
  // Sets a config key (written to the file at the next start()).
  void set(const std::string& key, const std::string& value) { settings_[key] = value; }
  // Adds NAME=VALUE to the environment of later starts.
  void add_environment(std::string entry) { environment_.push_back(std::move(entry)); }
  // Later starts go through a shell that opens `file` for appending on `fd`
  // without close-on-exec, as `tether-agent run 9>>file` would.
  void inherit_descriptor(int fd, std::string file) {
    inherited_fd_ = fd;
    inherited_file_ = std::move(file);
  }
  // Later starts run in a mount namespace of their own where `file` is
  // /etc/hosts (needs root; see hosts_override_available()).
  void use_hosts_file(std::string file) { hosts_file_ = std::move(file); }
  // Starts the agent and waits for its start line.
  core::Co<void> start();
  // Signals the agent (not its tasks, which run in their own process groups)
  // and waits for it to exit; the exit code or 128 + signal.
  core::Co<int> stop(int signum);
  core::Co<bool> wait_for_log(std::string text, uint64_t timeout_ms, size_t from = 0) {
    return process_.wait_for_log(std::move(text), timeout_ms, from);
  }
  LoggedProcess& process() { return process_; }
  const std::string& log() const { return process_.log(); }
  std::string state_dir() const { return dir_ + "/state"; }
  std::string outbox_path() const { return state_dir() + "/outbox.db"; }
  std::string config_path() const { return dir_ + "/agent.conf"; }

 private:
  std::string dir_;
  std::string name_;
  std::map<std::string, std::string> settings_;
  std::vector<std::string> environment_ = {"PATH=/usr/bin:/bin"};
  int inherited_fd_ = -1;
  std::string inherited_file_;
  std::string hosts_file_;
  LoggedProcess process_;
};

struct AgentWorldOptions {
  bool through_proxy = false;
  // False: run() starts only the hub; the body configures and starts the agent.
  bool start_agent = true;
  std::vector<std::string> hub_args;
};

// The agent reaches the hub through a TcpProxy (world.proxy).
inline AgentWorldOptions through_proxy() {
  AgentWorldOptions options;
  options.through_proxy = true;
  return options;
}

struct AgentWorld {
  core::Loop loop;
  core::ThreadPool pool{8};
  TempDir dir;
  std::string data_dir = dir.path() + "/hub";
  std::string agent_token = hub_command({"agent", "add", "edge-1", "--data-dir", data_dir});
  std::string admin_token = hub_command({"token", "admin", "--data-dir", data_dir});
  HubProcess hub;
  std::unique_ptr<TcpProxy> proxy;
  AgentProcess agent;
  AgentWorldOptions options;

  explicit AgentWorld(AgentWorldOptions world_options = AgentWorldOptions());

  Operator op() { return Operator(loop, pool, hub.url(), admin_token); }
  std::string hub_db() const { return data_dir + "/hub.db"; }

  // Starts the hub (and the proxy), then the agent pointed at it; runs
  // `body`; stops everything. On failure both logs are printed.
  void run(const std::function<core::Co<void>()>& body);

  // Submits `sh -c SCRIPT` to edge-1; the task id.
  core::Co<std::string> submit_shell(std::string script, std::string extra_json = "");
  // Waits for the task to reach `state` and returns its final.
  core::Co<FinalView> final_of(std::string task_id, std::string state, uint64_t timeout_ms);
  // How many final events the hub stored for the task's attempts.
  int final_events(const std::string& task_id) const;
};

}  // namespace tether::test
