// Test harness for integration tests: real processes on 127.0.0.1.
//
//   HubProcess     a tether-hub child; its stderr is drained continuously and
//                  tests await log lines (the bound port, a warning) as events
//   ScriptedAgent  plays an agent by hand: a real WebSocket channel and real
//                  HTTP, frames built and checked one by one
//   Operator       the operator API over HTTP
//
// Every wait has a deadline, so a broken hub fails a test instead of
// hanging it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/sse_parser.hpp"
#include "core/co.hpp"
#include "core/co_group.hpp"
#include "core/http_client.hpp"
#include "core/notification.hpp"
#include "core/process.hpp"
#include "core/websocket_client.hpp"
#include "logged_process.hpp"
#include "protocol/frames.hpp"

namespace tether::test {

std::string env_path(const char* variable);
std::string hub_binary();
std::string cli_binary();

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  // Writes `content` to path()/name with mode 0600 and returns the path.
  std::string write_secret(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A throwaway CA and a server certificate for 127.0.0.1 and localhost,
// made with the openssl command in `dir`.
struct TestCertificates {
  std::string ca;
  std::string cert;
  std::string key;
  explicit TestCertificates(const std::string& dir);
};

// Runs `command` with /bin/sh; its exit status (128 + signal if killed) and stdout.
std::pair<int, std::string> shell_output(const std::string& command);

// Runs `tether-hub <args>` to completion and returns its stdout (a token).
// A port on 127.0.0.1 nobody listens on now (the kernel's choice for a
// bind to port 0).
int free_port();

std::string hub_command(const std::vector<std::string>& args);

// With TETHER_TEST_POSTGRES=1 (meson test hub-postgres), every hub keeps its
// data in PostgreSQL instead of DATA_DIR/hub.db: one private server for the
// run (test_postgres.hpp), one database per data directory, made at first
// use. Returns the arguments that say so (--database, its password file),
// or none. hub_command and HubProcess add them after --data-dir.
std::vector<std::string> hub_database_args(const std::string& data_dir);
// While one lives, hubs go on PostgreSQL as with TETHER_TEST_POSTGRES=1 (for
// the postgres suite's own hub cases).
class HubsOnPostgres {
 public:
  HubsOnPostgres();
  ~HubsOnPostgres();
  HubsOnPostgres(const HubsOnPostgres&) = delete;
  HubsOnPostgres& operator=(const HubsOnPostgres&) = delete;
  // Restarts the shared server (pg_ctl stop -m fast, start).
  static void restart_server();
};
// For a tether-hub command line in a shell: --data-dir 'DIR' and those.
std::string hub_data_dir_words(const std::string& data_dir);
// Runs `sql` (no double quotes in it) on the hub's database: sqlite3
// -readonly on DATA_DIR/hub.db, or psql on its PostgreSQL database. Returns
// the rows, columns separated by '|'; REQUIREs success.
std::string hub_sql(const std::string& data_dir, const std::string& sql);
// The same without the REQUIRE: the tool's exit status and its output
// (stdout and stderr).
std::pair<int, std::string> try_hub_sql(const std::string& data_dir, const std::string& sql);

// Another process holding a database's write lock (sqlite3 with BEGIN
// IMMEDIATE), as an operator's tool or a hostile task can, until release().
class LockHolder {
 public:
  LockHolder(core::Loop& loop, std::string database);
  // Starts sqlite3 and waits until it holds the lock (REQUIREs it).
  core::Co<void> lock();
  // Lets it commit and waits for it to exit (REQUIREs status 0).
  core::Co<void> release();

 private:
  std::string database_;
  std::string release_file_;
  LoggedProcess process_;
};

class HubProcess {
 public:
  HubProcess(core::Loop& loop, std::string data_dir, std::vector<std::string> extra_args = {});

  // Starts the hub and waits until it listens (port 0 picks a free port on
  // the first start; restarts reuse it).
  core::Co<void> start();
  // Sends `signum` and waits for the process to exit.
  core::Co<void> stop(int signum);
  // Waits until the log contains `text` (after `from` bytes); false on timeout.
  core::Co<bool> wait_for_log(std::string text, uint64_t timeout_ms, size_t from = 0) {
    return process_.wait_for_log(std::move(text), timeout_ms, from);
  }

  // Adds NAME=VALUE to the environment of later starts.
  void add_environment(std::string entry) { environment_.push_back(std::move(entry)); }

  int port() const { return port_; }
  int pid() const { return process_.pid(); }
  // http or https, as the hub announced it.
  std::string url() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }
  std::string ws_url() const { return "ws://127.0.0.1:" + std::to_string(port_); }
  const std::string& log() const { return process_.log(); }
  bool running() const { return process_.running(); }
  const std::string& data_dir() const { return data_dir_; }

 private:
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::vector<std::string> environment_ = {"PATH=/usr/bin:/bin"};
  LoggedProcess process_;
  std::string scheme_ = "http";
  int port_ = 0;
};

class Operator {
 public:
  Operator(core::Loop& loop, core::ThreadPool& pool, std::string url, std::string token,
           std::string ca_file = std::string())
      : loop_(loop),
        pool_(pool),
        url_(std::move(url)),
        token_(std::move(token)),
        ca_file_(std::move(ca_file)) {}
  core::Co<Result<core::HttpReply>> request(std::string method, std::string target,
                                            std::string body = std::string());
  // POST /api/v1/tasks; returns the new task's id (REQUIREs success).
  core::Co<std::string> submit(std::string body);
  // The task's state, from GET /api/v1/tasks/{id}.
  core::Co<std::string> state_of(std::string task_id);
  // Waits (on the SSE stream) until the task reaches `state`; false on timeout.
  core::Co<bool> wait_for_state(std::string task_id, std::string state, uint64_t timeout_ms);
  // Follows the task's events (reconnecting with Last-Event-ID if the hub
  // goes away) until `wanted` accepts one; false on timeout or when the task
  // ends first. `wanted` runs on a pool thread. Output events are asked for
  // only when `with_output`.
  core::Co<bool> wait_for_event(std::string task_id,
                                std::function<bool(const cli::SseEvent&)> wanted,
                                uint64_t timeout_ms, bool with_output);
  // Waits until the hub has stored at least `bytes` of the task's `stream`.
  core::Co<bool> wait_for_output(std::string task_id, std::string stream, uint64_t bytes,
                                 uint64_t timeout_ms);
  // GET /api/v1/tasks/{id}: the task as JSON (REQUIREs 200).
  core::Co<std::string> task_json(std::string task_id);
  // The stored bytes of the task's `stream` (REQUIREs 200).
  core::Co<std::string> output(std::string task_id, std::string stream);

 private:
  core::Loop& loop_;
  core::ThreadPool& pool_;
  std::string url_;
  std::string token_;
  std::string ca_file_;
};

class ScriptedAgent {
 public:
  ScriptedAgent(core::Loop& loop, core::ThreadPool& pool, core::WebSocketClient& client,
                std::string url, std::string name, std::string token);

  const std::string& name() const { return name_; }
  core::Co<Result<std::shared_ptr<core::WebSocketConnection>>> connect();
  // Connects and exchanges hello; returns the hello_ack. (No defaulted
  // braced argument here: GCC 12 destroys such temporaries twice inside a
  // co_await operand.)
  core::Co<protocol::HubHelloAck> connect_and_hello();
  core::Co<protocol::HubHelloAck> connect_and_hello(protocol::AgentHello hello);
  void send(protocol::FramePayload payload, std::string message_id = {});
  void send_raw(std::string text);
  // The next frame from the hub, skipping hub.wake; an error result on
  // timeout or close.
  core::Co<Result<protocol::Frame>> receive(uint64_t timeout_ms = 5000);
  core::Co<Result<core::HttpReply>> poll(int wait_s, std::string token_override = std::string());
  core::Co<Result<core::HttpReply>> put_final(const std::string& attempt_id,
                                              const protocol::TaskFinal& final_frame);
  core::WebSocketConnection* socket() { return socket_.get(); }
  void close();
  // The instance later polls name (docs/protocol.md 3); empty: none.
  void set_instance(std::string instance) { instance_ = std::move(instance); }
  // hub.wake frames receive() skipped so far.
  uint64_t wakes() const { return wakes_; }

 private:
  core::Loop& loop_;
  core::ThreadPool& pool_;
  core::WebSocketClient& client_;
  std::string url_;
  std::string name_;
  std::string token_;
  std::shared_ptr<core::WebSocketConnection> socket_;
  uint64_t next_id_ = 1;
  std::string instance_;
  uint64_t wakes_ = 0;
};

// The tether CLI as a child process.
struct CliRun {
  std::string out;
  std::string err;
  int exit_code = -1;
};
core::Co<void> read_all(core::PipeReader& reader, std::string& into);
// Starts `tether <args>` with `environment` (PATH is added).
std::unique_ptr<core::Process> start_cli(core::Loop& loop, const std::vector<std::string>& args,
                                         std::vector<std::string> environment);
// Waits for a started CLI whose output `readers` are collecting into `run`.
core::Co<void> finish_cli(core::Process& process, core::CoGroup& readers, CliRun& run);
// Runs `tether <args>` to completion.
core::Co<CliRun> run_cli(core::Loop& loop, std::vector<std::string> args,
                         std::vector<std::string> environment);

// Runs `body` to its end on `loop`, then `cleanup`, after a failure too (then
// rethrown): for handles that keep the loop running, such as a listener's watch.
void run_with_cleanup(core::Loop& loop, const std::function<core::Co<void>()>& body,
                      const std::function<void()>& cleanup);

// A final report whose byte counts and digests describe `out` and `err`.
protocol::FinalReport final_for(protocol::AttemptStatus status, std::optional<int64_t> exit_code,
                                const std::string& out, const std::string& err);

}  // namespace tether::test
