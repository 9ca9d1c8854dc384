// tether: the operator CLI. Submit a task and follow its output, look at
// tasks and agents, cancel. See docs/cli.md.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli/hub_client.hpp"
#include "cli/task_follower.hpp"
#include "core/log.hpp"
#include "core/url.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/task_spec.hpp"

namespace {

using namespace tether;
using cli::HubClient;

constexpr int kExitUsage = 2;
constexpr int kExitHubError = 3;
constexpr int kExitInterrupted = 130;

constexpr const char* kUsage =
    "usage: tether [connection options] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  run --agent NAME [--target T] [--timeout S] [--cwd DIR] [--env NAME=VALUE]...\n"
    "      [--max-attempts N] [--reject-if-busy] [--cancel-on-interrupt] [--shell]\n"
    "      -- COMMAND [ARGS...]      submit a task, stream its output, exit with its status\n"
    "  logs TASK [-f]                print a task's output (-f: follow until it ends)\n"
    "  status TASK [--json]          show a task\n"
    "  cancel TASK [--reason TEXT]   cancel a task\n"
    "  tasks [--state S] [--limit N] [--json]\n"
    "  agents [--json]\n"
    "\n"
    "connection options (or the environment):\n"
    "  --hub-url URL      TETHER_HUB_URL     e.g. https://hub.example:7070\n"
    "  --token-file FILE  TETHER_TOKEN_FILE  a file (mode 0600) holding an operator token\n"
    "  --ca-file FILE     TETHER_CA_FILE     extra CA certificates (PEM) for https\n"
    "\n"
    "exit status of run and logs -f: the task's exit code; 128+N if signal N ended it;\n"
    "124 timed out, 125 cancelled, 69 rejected, 75 lost, 127 could not start;\n"
    "130 if you interrupted following; 2 bad usage; 3 hub unreachable or refused.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tether: %s\n\n%s", message.c_str(), kUsage);
  return kExitUsage;
}

int hub_error(const Error& error) {
  std::fprintf(stderr, "tether: %s\n", error.message.c_str());
  return kExitHubError;
}

// Ctrl-C and SIGTERM are taken by a thread of their own, so an interrupt can
// stop a blocked HTTP call cleanly. A second interrupt exits at once.
class InterruptWatcher {
 public:
  InterruptWatcher() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    thread_ = std::thread([this, set] {
      for (;;) {
        int signum = 0;
        if (sigwait(&set, &signum) != 0) continue;
        if (interrupted_.exchange(true)) _exit(kExitInterrupted);
        control_.load()->stop();
      }
    });
    thread_.detach();
  }
  const std::atomic<bool>& interrupted() const { return interrupted_; }
  void reset() { interrupted_ = false; }
  core::HttpCallControl& fresh_control() {
    owned_.push_back(std::make_unique<core::HttpCallControl>());
    control_ = owned_.back().get();
    return *owned_.back();
  }

 private:
  std::atomic<bool> interrupted_{false};
  std::atomic<core::HttpCallControl*> control_{nullptr};
  std::vector<std::unique_ptr<core::HttpCallControl>> owned_;
  std::thread thread_;
};

struct Args {
  std::vector<std::string> words;
  size_t next = 0;
  bool done() const { return next >= words.size(); }
  const std::string& peek() const { return words[next]; }
  std::string take() { return words[next++]; }
};

int follow(HubClient& client, const std::string& task_id, bool follow_stream, bool print_hint,
           bool cancel_on_interrupt) {
  const bool tty = ::isatty(2) != 0;
  InterruptWatcher watcher;
  cli::TaskFollower follower(client, task_id, follow_stream, tty);
  auto outcome = follower.run(watcher.interrupted(), watcher.fresh_control());
  if (!outcome) return hub_error(outcome.error());
  if (outcome->interrupted && cancel_on_interrupt) {
    std::fprintf(stderr, "\ntether: cancelling %s (interrupt again to stop waiting)\n",
                 task_id.c_str());
    if (auto cancelled = client.post("/api/v1/tasks/" + core::url_encode(task_id) + "/cancel",
                                     R"({"reason":"interrupted from tether run"})");
        !cancelled) {
      return hub_error(cancelled.error());
    }
    watcher.reset();
    outcome = follower.run(watcher.interrupted(), watcher.fresh_control());
    if (!outcome) return hub_error(outcome.error());
  }
  if (outcome->interrupted) {
    std::fprintf(
        stderr,
        "\ntether: stopped following %s; it keeps running. Re-attach with: tether logs -f %s\n",
        task_id.c_str(), task_id.c_str());
    return kExitInterrupted;
  }
  if (print_hint && tty && !outcome->state.empty()) {
    std::fprintf(stderr, "[tether] %s %s\n", task_id.c_str(), outcome->state.c_str());
  }
  if (!follow_stream && !outcome->ended) return 0;  // a snapshot of a running task
  return cli::exit_status_for(outcome->state, outcome->final_report);
}

int command_run(HubClient& client, Args& args) {
  std::string agent;
  protocol::TaskSpec spec;
  bool shell = false;
  bool reject = false;
  bool cancel_on_interrupt = false;
  uint64_t max_attempts = 1;
  while (!args.done() && args.peek() != "--") {
    const std::string flag = args.take();
    if (flag == "--shell") {
      shell = true;
      continue;
    }
    if (flag == "--reject-if-busy") {
      reject = true;
      continue;
    }
    if (flag == "--cancel-on-interrupt") {
      cancel_on_interrupt = true;
      continue;
    }
    if (args.done()) return usage_error(flag + " needs a value");
    const std::string value = args.take();
    try {
      if (flag == "--agent") {
        agent = value;
      } else if (flag == "--target") {
        spec.target = value;
      } else if (flag == "--timeout") {
        spec.timeout_s = std::stoull(value);
      } else if (flag == "--cwd") {
        spec.cwd = value;
      } else if (flag == "--max-attempts") {
        max_attempts = std::stoull(value);
      } else if (flag == "--env") {
        const auto equals = value.find('=');
        if (equals == std::string::npos || equals == 0)
          return usage_error("--env: expected NAME=VALUE");
        spec.env[value.substr(0, equals)] = value.substr(equals + 1);
      } else {
        return usage_error("run: unknown option " + flag);
      }
    } catch (const std::exception&) {
      return usage_error(flag + ": '" + value + "' is not a number");
    }
  }
  if (args.done() || args.take() != "--") return usage_error("run: give the command after --");
  if (agent.empty()) return usage_error("run: --agent is required");
  if (args.done()) return usage_error("run: no command after --");
  if (shell) {
    if (args.words.size() - args.next != 1) return usage_error("--shell takes one script argument");
    spec.shell = args.take();
  } else {
    while (!args.done())
      spec.argv.push_back(args.take());
  }

  protocol::JsonWriter json;
  json.begin_object();
  json.field("agent", agent);
  json.key("command");
  json.begin_object();
  if (shell) {
    json.field("shell", spec.shell);
  } else {
    json.key("argv");
    json.begin_array();
    for (const auto& arg : spec.argv)
      json.string(arg);
    json.end_array();
  }
  json.end_object();
  json.key("env");
  json.begin_object();
  for (const auto& [name, value] : spec.env)
    json.field(name, value);
  json.end_object();
  if (!spec.cwd.empty()) json.field("cwd", spec.cwd);
  json.field("timeout_s", spec.timeout_s);
  if (!spec.target.empty()) json.field("target", spec.target);
  json.field("on_conflict", reject ? "reject" : "queue");
  json.field("max_attempts", max_attempts);
  json.end_object();

  auto created = client.post("/api/v1/tasks", json.str());
  if (!created) return hub_error(created.error());
  auto document = protocol::parse_json_object(created->body, "task");
  if (!document) return hub_error(document.error());
  auto id = protocol::JsonObjectReader(*document, "task").required_string("id");
  if (!id) return hub_error(id.error());
  if (::isatty(2))
    std::fprintf(stderr, "[tether] submitted %s to %s\n", id->c_str(), agent.c_str());
  return follow(client, *id, true, true, cancel_on_interrupt);
}

int command_status(HubClient& client, Args& args) {
  if (args.done()) return usage_error("status: which task?");
  const std::string id = args.take();
  const bool as_json = !args.done() && args.take() == "--json";
  auto reply = client.get("/api/v1/tasks/" + core::url_encode(id));
  if (!reply) return hub_error(reply.error());
  if (as_json) {
    std::printf("%s\n", reply->body.c_str());
    return 0;
  }
  auto document = protocol::parse_json_object(reply->body, "task");
  if (!document) return hub_error(document.error());
  const auto& task = *document;
  auto text = [&](const char* field) {
    return task.HasMember(field) && task[field].IsString() ? std::string(task[field].GetString())
                                                           : "";
  };
  std::printf("task      %s\nagent     %s\nstate     %s\ncreated   %s\nupdated   %s\n",
              text("id").c_str(), text("agent").c_str(), text("state").c_str(),
              text("created_at").c_str(), text("updated_at").c_str());
  if (task.HasMember("final") && task["final"].IsObject()) {
    const auto& final_report = task["final"];
    std::printf("exit      %s\n",
                final_report["exit_code"].IsInt64()
                    ? std::to_string(final_report["exit_code"].GetInt64()).c_str()
                    : (final_report["signal"].IsInt64()
                           ? ("signal " + std::to_string(final_report["signal"].GetInt64())).c_str()
                           : "-"));
    for (const char* stream : {"stdout", "stderr"}) {
      std::printf("%-9s %llu bytes, sha256 %s\n", stream,
                  static_cast<unsigned long long>(final_report[stream]["bytes"].GetUint64()),
                  final_report[stream]["sha256"].GetString());
    }
    if (final_report["error"].IsString())
      std::printf("error     %s\n", final_report["error"].GetString());
  }
  if (task.HasMember("output_verified") && task["output_verified"].IsBool()) {
    std::printf("verified  %s%s\n", task["output_verified"].GetBool() ? "yes" : "no",
                text("verification_error").empty()
                    ? ""
                    : (" (" + text("verification_error") + ")").c_str());
  }
  return 0;
}

int command_cancel(HubClient& client, Args& args) {
  if (args.done()) return usage_error("cancel: which task?");
  const std::string id = args.take();
  std::string reason;
  if (!args.done() && args.peek() == "--reason") {
    args.take();
    if (args.done()) return usage_error("--reason needs a value");
    reason = args.take();
  }
  protocol::JsonWriter json;
  json.begin_object();
  if (!reason.empty()) json.field("reason", reason);
  json.end_object();
  auto reply = client.post("/api/v1/tasks/" + core::url_encode(id) + "/cancel", json.str());
  if (!reply) return hub_error(reply.error());
  std::printf("cancel requested for %s\n", id.c_str());
  return 0;
}

int command_tasks(HubClient& client, Args& args) {
  std::string query;
  bool as_json = false;
  while (!args.done()) {
    const std::string flag = args.take();
    if (flag == "--json") {
      as_json = true;
    } else if ((flag == "--state" || flag == "--limit") && !args.done()) {
      query += (query.empty() ? "?" : "&") + flag.substr(2) + "=" + core::url_encode(args.take());
    } else {
      return usage_error("tasks: unknown option " + flag);
    }
  }
  auto reply = client.get("/api/v1/tasks" + query);
  if (!reply) return hub_error(reply.error());
  if (as_json) {
    std::printf("%s\n", reply->body.c_str());
    return 0;
  }
  auto document = protocol::parse_json_object(reply->body, "tasks");
  if (!document) return hub_error(document.error());
  std::printf("%-20s %-10s %-16s %-24s %s\n", "TASK", "STATE", "AGENT", "CREATED", "COMMAND");
  for (const auto& task : (*document)["tasks"].GetArray()) {
    std::string command;
    const auto& spec = task["command"];
    if (spec.HasMember("shell")) {
      command = spec["shell"].GetString();
    } else {
      for (const auto& arg : spec["argv"].GetArray())
        command += (command.empty() ? "" : " ") + std::string(arg.GetString());
    }
    // One row per task: newlines and other controls of a script become spaces.
    for (char& c : command) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    if (command.size() > 60) command = command.substr(0, 57) + "...";
    std::printf("%-20s %-10s %-16s %-24s %s\n", task["id"].GetString(), task["state"].GetString(),
                task["agent"].GetString(), task["created_at"].GetString(), command.c_str());
  }
  return 0;
}

int command_agents(HubClient& client, Args& args) {
  const bool as_json = !args.done() && args.take() == "--json";
  auto reply = client.get("/api/v1/agents");
  if (!reply) return hub_error(reply.error());
  if (as_json) {
    std::printf("%s\n", reply->body.c_str());
    return 0;
  }
  auto document = protocol::parse_json_object(reply->body, "agents");
  if (!document) return hub_error(document.error());
  std::printf("%-20s %-10s %-24s %-8s %-8s %s\n", "AGENT", "CONNECTED", "LAST SEEN", "VERSION",
              "RUNNING", "OUTBOX");
  for (const auto& agent : (*document)["agents"].GetArray()) {
    const auto& outbox = agent["outbox"];
    std::string depth =
        outbox["rows"].IsInt64()
            ? std::to_string(outbox["rows"].GetInt64()) + " rows, " +
                  std::to_string(outbox["bytes"].IsInt64() ? outbox["bytes"].GetInt64() : 0) +
                  " bytes"
            : "-";
    std::printf("%-20s %-10s %-24s %-8s %-8llu %s\n", agent["name"].GetString(),
                agent["connected"].GetBool() ? "yes" : "no", agent["last_seen_at"].GetString(),
                agent["version"].GetString(),
                static_cast<unsigned long long>(agent["running_attempts"].GetUint64()),
                depth.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  // The CLI talks to people through its own messages; the library's info
  // lines (an address that failed before the next one answered) stay quiet.
  core::set_log_level(core::LogLevel::kWarning);
  Args args{std::vector<std::string>(argv + 1, argv + argc)};
  std::string hub_url;
  std::string token_file;
  std::string ca_file;
  while (!args.done() && args.peek().rfind("--", 0) == 0) {
    const std::string flag = args.take();
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag == "--version") {
      std::printf("tether %s\n", TETHER_VERSION);
      return 0;
    }
    if (args.done()) return usage_error(flag + " needs a value");
    if (flag == "--hub-url") {
      hub_url = args.take();
    } else if (flag == "--token-file") {
      token_file = args.take();
    } else if (flag == "--ca-file") {
      ca_file = args.take();
    } else {
      return usage_error("unknown option " + flag);
    }
  }
  if (args.done()) return usage_error("no command");
  const std::string command = args.take();
  static const std::vector<std::string> kCommands = {"run",    "logs",  "status",
                                                     "cancel", "tasks", "agents"};
  if (std::find(kCommands.begin(), kCommands.end(), command) == kCommands.end()) {
    return usage_error("unknown command '" + command + "'");
  }
  auto connection = cli::resolve_connection(hub_url, token_file, ca_file);
  if (!connection) {
    std::fprintf(stderr, "tether: %s\n", connection.error().message.c_str());
    return kExitUsage;
  }
  cli::HubClient client(std::move(*connection));
  if (command == "run") return command_run(client, args);
  if (command == "logs") {
    if (args.done()) return usage_error("logs: which task?");
    const std::string id = args.take();
    const bool follow_stream = !args.done() && (args.peek() == "-f" || args.peek() == "--follow");
    return follow(client, id, follow_stream, false, false);
  }
  if (command == "status") return command_status(client, args);
  if (command == "cancel") return command_cancel(client, args);
  if (command == "tasks") return command_tasks(client, args);
  return command_agents(client, args);
}
