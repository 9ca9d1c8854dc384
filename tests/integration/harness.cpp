#include "harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/offload.hpp"
#include "core/run.hpp"
#include "core/timer.hpp"
#include "core/wall_clock.hpp"
#include "protocol/base64.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/sha256.hpp"

namespace tether::test {

std::string env_path(const char* variable) {
  const char* value = std::getenv(variable);
  if (!value || !*value) throw std::runtime_error(std::string(variable) + " is not set");
  return value;
}
std::string hub_binary() {
  return env_path("TETHER_HUB");
}
std::string cli_binary() {
  return env_path("TETHER_CLI");
}

TempDir::TempDir() {
  char pattern[] = "/tmp/tether-test-XXXXXX";
  const char* made = ::mkdtemp(pattern);
  if (!made) throw std::runtime_error("mkdtemp failed");
  path_ = made;
  // An agent here runs its tasks as another user (tether-task), whose homes
  // are in the agent's state_dir below: they must pass through (not list).
  ::chmod(path_.c_str(), 0711);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write_secret(const std::string& name, const std::string& content) const {
  const std::string file = path_ + "/" + name;
  {
    std::ofstream out(file);
    out << content << "\n";
  }
  std::filesystem::permissions(
      file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return file;
}

std::pair<int, std::string> shell_output(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    out.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

// A port nobody listens on now (the kernel's choice for a bind to port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string hub_data_dir_words(const std::string& data_dir) {
  std::string words = "--data-dir '" + data_dir + "'";
  for (const auto& arg : hub_database_args(data_dir))
    words += " '" + arg + "'";
  return words;
}

std::string hub_command(const std::vector<std::string>& args) {
  std::string command = "'" + hub_binary() + "'";
  for (size_t i = 0; i < args.size(); ++i) {
    command += " '" + args[i] + "'";
    if (i > 0 && args[i - 1] == "--data-dir") {
      for (const auto& arg : hub_database_args(args[i]))
        command += " '" + arg + "'";
    }
  }
  auto [status, out] = shell_output(command);
  INFO(command);
  REQUIRE(status == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

// ---------------------------------------------------------------------------
// LockHolder

LockHolder::LockHolder(core::Loop& loop, std::string database)
    : database_(std::move(database)), release_file_(database_ + ".release"), process_(loop) {}

core::Co<void> LockHolder::lock() {
  std::filesystem::remove(release_file_);
  // sqlite3 buffers .print until it exits; the shell it runs says "locked"
  // at once, then keeps the transaction open until the release file exists.
  process_.start(
      {"/usr/bin/sqlite3", database_, ".timeout 10000", "BEGIN IMMEDIATE;",
       ".system echo locked; while [ ! -e '" + release_file_ + "' ]; do sleep 0.01; done",
       "COMMIT;"},
      {"PATH=/usr/bin:/bin"});
  const bool locked = co_await process_.wait_for_log("locked", 15000);
  INFO(process_.log());
  REQUIRE(locked);
}

core::Co<void> LockHolder::release() {
  { std::ofstream(release_file_) << "\n"; }
  const int status = co_await process_.wait_exit(15000);
  INFO(process_.log());
  REQUIRE(status == 0);
}

// ---------------------------------------------------------------------------
// HubProcess

HubProcess::HubProcess(core::Loop& loop, std::string data_dir, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), extra_args_(std::move(extra_args)), process_(loop) {}

core::Co<void> HubProcess::start() {
  std::vector<std::string> argv = {hub_binary(), "serve",    "--data-dir",
                                   data_dir_,    "--listen", "127.0.0.1:" + std::to_string(port_)};
  const auto database = hub_database_args(data_dir_);
  argv.insert(argv.end(), database.begin(), database.end());
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  const size_t from = process_.log().size();
  process_.start(std::move(argv), environment_);
  auto logged = co_await process_.wait_for_log("listening on http", 10000, from);
  REQUIRE(logged);
  static const std::regex listening("listening on (https?)://[^ ]+:([0-9]+)");
  std::smatch match;
  const std::string tail = process_.log().substr(from);
  REQUIRE(std::regex_search(tail, match, listening));
  scheme_ = match[1];
  port_ = std::stoi(match[2]);
}

core::Co<void> HubProcess::stop(int signum) {
  if (!process_.running()) co_return;
  (void)co_await process_.stop(signum);
}

// ---------------------------------------------------------------------------
// TestCertificates

TestCertificates::TestCertificates(const std::string& dir) {
  ca = dir + "/ca.pem";
  cert = dir + "/server.pem";
  key = dir + "/server.key";
  const std::string script = "cd '" + dir +
                             "' && "
                             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out "
                             "ca.pem -days 2 -subj /CN=tether-test-ca && "
                             "openssl req -newkey rsa:2048 -nodes -keyout server.key -out "
                             "server.csr -subj /CN=127.0.0.1 && "
                             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
                             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                             "-CAcreateserial -out server.pem -days 2 -extfile san.ext 2>&1";
  auto [status, output] = shell_output(script);
  INFO(output);
  REQUIRE(status == 0);
}

// ---------------------------------------------------------------------------
// Operator

core::Co<Result<core::HttpReply>> Operator::request(std::string method, std::string target,
                                                    std::string body) {
  core::HttpCall call;
  call.method = std::move(method);
  call.server = *core::parse_url(url_);
  call.target = std::move(target);
  call.body = std::move(body);
  call.headers.emplace_back("Authorization", "Bearer " + token_);
  call.read_timeout_s = 15;
  call.ca_file = ca_file_;
  co_return co_await core::http_request(loop_, pool_, std::move(call));
}

core::Co<std::string> Operator::submit(std::string body) {
  auto reply = co_await request("POST", "/api/v1/tasks", std::move(body));
  REQUIRE(reply.ok());
  INFO(reply->body);
  REQUIRE(reply->status == 201);
  auto document = protocol::parse_json_object(reply->body, "task");
  REQUIRE(document.ok());
  co_return std::string((*document)["id"].GetString());
}

core::Co<std::string> Operator::state_of(std::string task_id) {
  auto reply = co_await request("GET", "/api/v1/tasks/" + task_id);
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  auto document = protocol::parse_json_object(reply->body, "task");
  REQUIRE(document.ok());
  co_return std::string((*document)["state"].GetString());
}

core::Co<bool> Operator::wait_for_state(std::string task_id, std::string state,
                                        uint64_t timeout_ms) {
  const std::string needle = "\"state\":\"" + state + "\"";
  std::function<bool(const cli::SseEvent&)> wanted = [needle](const cli::SseEvent& event) {
    return event.type == "status" && event.data.find(needle) != std::string::npos;
  };
  co_return co_await wait_for_event(std::move(task_id), std::move(wanted), timeout_ms, false);
}

core::Co<bool> Operator::wait_for_event(std::string task_id,
                                        std::function<bool(const cli::SseEvent&)> wanted,
                                        uint64_t timeout_ms, bool with_output) {
  loop_.update_time();
  const uint64_t deadline = loop_.now_ms() + timeout_ms;
  // Shared with the pool thread, which may outlive this frame on timeout.
  struct Progress {
    std::string last_event_id;  // read only after the call has returned
    std::atomic<bool> seen{false};
    std::atomic<bool> ended{false};
  };
  auto progress = std::make_shared<Progress>();
  while (loop_.now_ms() < deadline) {
    core::HttpCall call;
    call.server = *core::parse_url(url_);
    call.target = "/api/v1/tasks/" + task_id + "/events" + (with_output ? "" : "?output=0");
    call.headers.emplace_back("Authorization", "Bearer " + token_);
    if (!progress->last_event_id.empty())
      call.headers.emplace_back("Last-Event-ID", progress->last_event_id);
    call.read_timeout_s = static_cast<int>((deadline - loop_.now_ms()) / 1000 + 1);
    call.ca_file = ca_file_;
    auto control = std::make_shared<core::HttpCallControl>();
    std::function<Result<core::HttpReply>()> work = [call, control, progress, wanted] {
      cli::SseParser parser([&](const cli::SseEvent& event) {
        if (!event.id.empty()) progress->last_event_id = event.id;
        if (event.type == "end") progress->ended = true;
        if (!progress->seen && wanted(event)) progress->seen = true;
      });
      core::HttpStreamHandlers handlers;
      handlers.on_data = [&](std::string_view data) {
        (void)parser.feed(data);
        return !progress->seen && !progress->ended;
      };
      return core::http_call(call, control.get(), &handlers);
    };
    core::CancellationSource timeout;
    core::Timer timer(loop_);
    timer.start(deadline - loop_.now_ms(), [&timeout] { timeout.cancel(); });
    auto reply = co_await core::run_off_loop<core::HttpReply>(loop_, pool_, std::move(work),
                                                              timeout.token());
    timer.stop();
    if (reply.is_cancelled()) {
      control->stop();  // the deadline passed
      co_return progress->seen.load();
    }
    loop_.update_time();
    if (progress->seen) co_return true;
    if (progress->ended) co_return false;
    if (!reply.ok() || reply->status != 200) {
      // The hub is restarting: try again shortly.
      auto paused = co_await core::sleep_for(loop_, 100);
      (void)paused;
      loop_.update_time();
    }
  }
  co_return false;
}

core::Co<bool> Operator::wait_for_output(std::string task_id, std::string stream, uint64_t bytes,
                                         uint64_t timeout_ms) {
  std::function<bool(const cli::SseEvent&)> wanted = [stream, bytes](const cli::SseEvent& event) {
    if (event.type != "output" && event.type != "gap") return false;
    auto document = protocol::parse_json_object(event.data, "event");
    if (!document.ok()) return false;
    const auto& json = *document;
    if (json["stream"].GetString() != stream) return false;
    uint64_t length = 0;
    if (event.type == "gap") {
      length = json["length"].GetUint64();
    } else if (std::string_view(json["encoding"].GetString()) == "base64") {
      length = protocol::base64_decode(json["data"].GetString())->size();
    } else {
      length = json["data"].GetStringLength();
    }
    return json["offset"].GetUint64() + length >= bytes;
  };
  co_return co_await wait_for_event(std::move(task_id), std::move(wanted), timeout_ms, true);
}

core::Co<std::string> Operator::task_json(std::string task_id) {
  auto reply = co_await request("GET", "/api/v1/tasks/" + task_id);
  REQUIRE(reply.ok());
  INFO(reply->body);
  REQUIRE(reply->status == 200);
  co_return std::move(reply->body);
}

core::Co<std::string> Operator::output(std::string task_id, std::string stream) {
  auto reply = co_await request("GET", "/api/v1/tasks/" + task_id + "/output?stream=" + stream);
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  co_return std::move(reply->body);
}

// ---------------------------------------------------------------------------
// ScriptedAgent

ScriptedAgent::ScriptedAgent(core::Loop& loop, core::ThreadPool& pool,
                             core::WebSocketClient& client, std::string url, std::string name,
                             std::string token)
    : loop_(loop),
      pool_(pool),
      client_(client),
      url_(std::move(url)),
      name_(std::move(name)),
      token_(std::move(token)) {}

core::Co<Result<std::shared_ptr<core::WebSocketConnection>>> ScriptedAgent::connect() {
  core::WebSocketConnectOptions options;
  auto http = *core::parse_url(url_);
  options.url =
      *core::parse_url(std::string(http.uses_tls() ? "wss" : "ws") + "://" + http.host + ":" +
                       std::to_string(http.port) + "/api/v1/agents/" + name_ + "/channel");
  options.headers = {{"Authorization", "Bearer " + token_}};
  options.max_message_bytes = 4 << 20;
  auto connected = co_await client_.connect(options);
  if (connected) socket_ = *connected;
  co_return connected;
}

core::Co<protocol::HubHelloAck> ScriptedAgent::connect_and_hello() {
  protocol::AgentHello hello;
  hello.version = "test";
  co_return co_await connect_and_hello(std::move(hello));
}

core::Co<protocol::HubHelloAck> ScriptedAgent::connect_and_hello(protocol::AgentHello hello) {
  auto connected = co_await connect();
  REQUIRE(connected.ok());
  if (hello.version.empty()) hello.version = "test";
  send(hello, "hello:" + name_ + ":" + std::to_string(next_id_));
  auto ack = co_await receive();
  REQUIRE(ack.ok());
  REQUIRE(std::holds_alternative<protocol::HubHelloAck>(ack->payload));
  co_return std::get<protocol::HubHelloAck>(ack->payload);
}

void ScriptedAgent::send(protocol::FramePayload payload, std::string message_id) {
  protocol::Frame frame;
  frame.message_id =
      message_id.empty() ? name_ + ":m" + std::to_string(next_id_++) : std::move(message_id);
  frame.agent_id = name_;
  frame.sent_at = core::utc_now();
  frame.payload = std::move(payload);
  send_raw(protocol::encode_frame(frame));
}

void ScriptedAgent::send_raw(std::string text) {
  REQUIRE(socket_);
  socket_->send_text(std::move(text));
}

core::Co<Result<protocol::Frame>> ScriptedAgent::receive(uint64_t timeout_ms) {
  REQUIRE(socket_);
  core::CancellationSource timeout;
  core::Timer timer(loop_);
  timer.start(timeout_ms, [&timeout] { timeout.cancel(); });
  for (;;) {
    auto text = co_await socket_->receive(timeout.token());
    if (!text) {
      timer.stop();
      co_return text.error();
    }
    auto frame = protocol::decode_frame(*text);
    if (!frame) {
      timer.stop();
      co_return frame.error();
    }
    if (std::holds_alternative<protocol::HubWake>(frame->payload)) {
      ++wakes_;
      continue;
    }
    timer.stop();
    co_return std::move(*frame);
  }
}

core::Co<Result<core::HttpReply>> ScriptedAgent::poll(int wait_s, std::string token_override) {
  core::HttpCall call;
  call.server = *core::parse_url(url_);
  call.target = "/api/v1/agents/" + name_ + "/tasks/next?wait=" + std::to_string(wait_s) +
                (instance_.empty() ? "" : "&instance=" + instance_);
  call.headers.emplace_back("Authorization",
                            "Bearer " + (token_override.empty() ? token_ : token_override));
  call.read_timeout_s = wait_s + 10;
  co_return co_await core::http_request(loop_, pool_, std::move(call));
}

core::Co<Result<core::HttpReply>> ScriptedAgent::put_final(const std::string& attempt_id,
                                                           const protocol::TaskFinal& final_frame) {
  protocol::Frame frame;
  frame.message_id = protocol::final_message_id(attempt_id);
  frame.agent_id = name_;
  frame.sent_at = core::utc_now();
  frame.payload = final_frame;
  core::HttpCall call;
  call.method = "PUT";
  call.server = *core::parse_url(url_);
  call.target = "/api/v1/attempts/" + attempt_id + "/final";
  call.body = protocol::encode_frame(frame);
  call.headers.emplace_back("Authorization", "Bearer " + token_);
  co_return co_await core::http_request(loop_, pool_, std::move(call));
}

void ScriptedAgent::close() {
  if (socket_) socket_->close(core::kCloseNormal, "test done");
}

core::Co<void> read_all(core::PipeReader& reader, std::string& into) {
  for (;;) {
    auto chunk = co_await reader.read();
    if (!chunk || chunk->end_of_stream) co_return;
    into.append(chunk->bytes);
  }
}

std::unique_ptr<core::Process> start_cli(core::Loop& loop, const std::vector<std::string>& args,
                                         std::vector<std::string> environment) {
  core::SpawnOptions options;
  options.argv = {cli_binary()};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.environment = std::move(environment);
  options.environment.push_back("PATH=/usr/bin:/bin");
  auto process = core::Process::spawn(loop, options);
  REQUIRE(process.ok());
  return std::move(*process);
}

core::Co<void> finish_cli(core::Process& process, core::CoGroup& readers, CliRun& run) {
  // Bounded: a CLI that does not end is a failure, not a hang.
  core::CancellationSource patience;
  core::Timer timer(process.loop());
  timer.start(60'000, [&patience] { patience.cancel(); });
  auto status = co_await process.wait_exit(patience.token());
  timer.stop();
  if (!status.ok()) {
    process.signal_group(SIGKILL);
    status = co_await process.wait_exit();
    co_await readers.join();
    FAIL("the CLI did not exit within 60 s; killed. stderr: " << run.err);
  }
  co_await readers.join();
  REQUIRE(status.ok());
  run.exit_code =
      status->term_signal ? 128 + status->term_signal : static_cast<int>(status->exit_code);
}

core::Co<CliRun> run_cli(core::Loop& loop, std::vector<std::string> args,
                         std::vector<std::string> environment) {
  auto process = start_cli(loop, args, std::move(environment));
  CliRun run;
  core::CoGroup readers;
  readers.spawn(read_all(process->stdout_reader(), run.out));
  readers.spawn(read_all(process->stderr_reader(), run.err));
  co_await finish_cli(*process, readers, run);
  co_return run;
}

protocol::FinalReport final_for(protocol::AttemptStatus status, std::optional<int64_t> exit_code,
                                const std::string& out, const std::string& err) {
  protocol::FinalReport report;
  report.status = status;
  report.exit_code = exit_code;
  report.started_at = core::utc_now();
  report.finished_at = core::utc_now();
  report.stdout_summary = {out.size(), protocol::sha256_hex(out), 0};
  report.stderr_summary = {err.size(), protocol::sha256_hex(err), 0};
  return report;
}

void run_with_cleanup(core::Loop& loop, const std::function<core::Co<void>()>& body,
                      const std::function<void()>& cleanup) {
  auto scenario = [&]() -> core::Co<void> {
    std::exception_ptr failure;
    try {
      co_await body();
    } catch (...) {
      failure = std::current_exception();
    }
    cleanup();
    if (failure) std::rethrow_exception(failure);
  };
  core::run_to_completion(loop, scenario());
}

}  // namespace tether::test
