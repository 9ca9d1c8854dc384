// tether: the operator CLI. Run a command on a fleet (fleet_commands.hpp)
// or submit a task and follow its output, look at tasks, runs and agents,
// cancel. See docs/cli.md.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/audit_command.hpp"
#include "cli/command_line.hpp"
#include "cli/command_table.hpp"
#include "cli/fleet_commands.hpp"
#include "cli/hub_client.hpp"
#include "cli/interrupt_watcher.hpp"
#include "cli/printable.hpp"
#include "cli/run_options.hpp"
#include "cli/task_follower.hpp"
#include "cli/task_options.hpp"
#include "cli/task_view_text.hpp"
#include "core/log.hpp"
#include "core/url.hpp"
#include "protocol/attempt_report.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/labels.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/selector.hpp"
#include "protocol/task_spec.hpp"

namespace {

using namespace tether;
using cli::HubClient;

constexpr int kExitUsage = 2;
constexpr int kExitHubError = 3;

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tether: %s\n\n%s", message.c_str(), cli::kUsage);
  return kExitUsage;
}

// A non-negative decimal count, all of `text`.
bool parse_count(const std::string& text, uint64_t& out) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && !text.empty();
}

int hub_error(const Error& error) {
  // The message may quote what the hub or an agent said: never raw.
  std::fprintf(stderr, "tether: %s\n", cli::printable(error.message).c_str());
  return kExitHubError;
}

int follow(HubClient& client, const std::string& task_id, bool follow_stream, bool print_hint,
           bool cancel_on_interrupt) {
  const bool tty = ::isatty(2) != 0;
  cli::InterruptWatcher watcher;
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
  if (outcome->stdout_closed) {
    // Whoever read our stdout has gone (`| head -1`): stop at once, say how
    // to come back, and end as a program killed by SIGPIPE would.
    std::fprintf(stderr,
                 "%stether: stdout closed; stopped following %s, which keeps running. "
                 "Re-attach with: tether logs -f %s\n",
                 outcome->line_open ? "\n" : "", task_id.c_str(), task_id.c_str());
    std::fflush(stderr);
    ::signal(SIGPIPE, SIG_DFL);
    ::raise(SIGPIPE);
    return 128 + SIGPIPE;
  }
  if (outcome->interrupted) {
    std::fprintf(
        stderr,
        "\ntether: stopped following %s; it keeps running. Re-attach with: tether logs -f %s\n",
        task_id.c_str(), task_id.c_str());
    return cli::kExitInterrupted;
  }
  // An attempt whose command never ran has no stderr of its own: why it
  // failed goes there, or a script would see only the exit status.
  if (const auto& report = outcome->final_report;
      report && !report->exit_code && !report->signal && !report->error.empty() &&
      report->status == protocol::AttemptStatus::kFailed) {
    std::fprintf(stderr, "%stether: %s did not start: %s\n", outcome->line_open ? "\n" : "",
                 task_id.c_str(), cli::printable(report->error).c_str());
  }
  if (print_hint && tty && !outcome->state.empty()) {
    // On a fresh line: the task's last line may have no newline.
    std::fprintf(stderr, "%s[tether] %s %s\n", outcome->line_open ? "\n" : "", task_id.c_str(),
                 cli::printable(outcome->state).c_str());
  }
  if (!follow_stream && !outcome->ended) return 0;  // a snapshot of a running task
  return cli::exit_status_for(outcome->state, outcome->final_report);
}

// A command's outcome (fleet_commands.hpp, audit): its status, or 2 or 3 for its error.
int command_status_of(const Result<int>& status) {
  if (status) return *status;
  return status.error().code == "usage" ? usage_error(status.error().message)
                                        : hub_error(status.error());
}

int command_run(HubClient& client, const cli::CommandLine& line) {
  if (auto form = cli::check_run_form(line); !form) return usage_error(form.error().message);
  if (cli::is_fan_out(line)) return command_status_of(cli::run_fan_out(client, line));
  const std::string agent = line.value("--agent");
  const std::string any = line.value("--any");
  auto spec = cli::task_spec_from(line);
  if (!spec) return usage_error(spec.error().message);
  if (agent.empty() == any.empty()) {
    return usage_error(
        "run: give --agent NAME, or --any SELECTOR for the first free agent whose "
        "labels match");
  }
  uint64_t max_attempts = 1;
  if (line.has("--max-attempts") && !parse_count(line.value("--max-attempts"), max_attempts)) {
    return usage_error("--max-attempts: '" + line.value("--max-attempts") + "' is not a number");
  }
  protocol::SubmitRequest request;
  request.agent = agent;
  if (!any.empty()) {
    auto selector = protocol::Selector::parse(any);
    if (!selector) return usage_error("--any: " + selector.error().message);
    request.selector = selector->text();
  }
  request.spec = std::move(*spec);
  request.reject_on_conflict = line.has("--reject-if-busy");
  // The hub checks the range (1 to kMaxAttempts) and names the field.
  request.max_attempts = static_cast<int>(std::min<uint64_t>(max_attempts, 1u << 30));
  auto created = client.post("/api/v1/tasks", protocol::encode_submit(request));
  if (!created) return hub_error(created.error());
  auto document = protocol::parse_json_object(created->body, "task");
  if (!document) return hub_error(document.error());
  auto id = protocol::JsonObjectReader(*document, "task").required_string("id");
  if (!id) return hub_error(id.error());
  if (::isatty(2)) {
    std::fprintf(
        stderr, "[tether] submitted %s to %s\n", id->c_str(),
        agent.empty() ? ("any agent matching " + request.selector).c_str() : agent.c_str());
  }
  return follow(client, *id, true, true, line.has("--cancel-on-interrupt"));
}

// The one operand a command takes (a task id), or a usage error.
std::optional<std::string> single_operand(const cli::CommandLine& line) {
  if (line.operands.size() != 1) return std::nullopt;
  return line.operands.front();
}

// `logs TASK`, or `logs --run RUN --agent NAME`: that agent's task in the run.
int command_logs(HubClient& client, const cli::CommandLine& line) {
  if (line.has("--run") != line.has("--agent")) {
    return usage_error("logs: --run RUN and --agent NAME go together");
  }
  std::string task_id;
  if (line.has("--run")) {
    if (!line.operands.empty()) {
      return usage_error("logs: a task id or --run RUN --agent NAME, not both");
    }
    auto found = cli::run_task_of(client, line.value("--run"), line.value("--agent"));
    if (!found) return hub_error(found.error());
    task_id = *found;
  } else {
    auto id = single_operand(line);
    if (!id) return usage_error("logs: which task? (one task id)");
    task_id = *id;
  }
  return follow(client, task_id, line.has("--follow"), false, false);
}

int command_status(HubClient& client, const cli::CommandLine& line) {
  auto id = single_operand(line);
  if (!id) return usage_error("status: which task? (one task id)");
  const bool as_json = line.has("--json");
  auto reply = client.get("/api/v1/tasks/" + core::url_encode(*id));
  if (!reply) return hub_error(reply.error());
  if (as_json) {
    std::printf("%s\n", cli::printable_json(reply->body).c_str());
    return 0;
  }
  auto decoded = protocol::decode_task_view(reply->body);
  if (!decoded) return hub_error(decoded.error());
  std::fputs(cli::task_view_text(*decoded).c_str(), stdout);
  return 0;
}

int command_cancel(HubClient& client, const cli::CommandLine& line) {
  auto task = single_operand(line);
  if (!task) return usage_error("cancel: which task? (one task id)");
  const std::string id = *task;
  const std::string reason = line.value("--reason");
  protocol::JsonWriter json;
  json.begin_object();
  if (!reason.empty()) json.field("reason", reason);
  json.end_object();
  auto reply = client.post("/api/v1/tasks/" + core::url_encode(id) + "/cancel", json.str());
  if (!reply) return hub_error(reply.error());
  std::printf("cancel requested for %s\n", cli::printable(id).c_str());
  return 0;
}

int command_remove_agent(HubClient& client, const cli::CommandLine& line) {
  auto name = single_operand(line);
  if (!name) return usage_error("remove-agent: which agent? (one name)");
  auto reply = client.remove("/api/v1/agents/" + core::url_encode(*name));
  if (!reply) return hub_error(reply.error());
  auto document = protocol::parse_json_object(reply->body, "removal");
  const uint64_t ended = document && (*document)["tasks_ended"].IsUint64()
                             ? (*document)["tasks_ended"].GetUint64()
                             : 0;
  std::printf("removed agent %s; %llu task(s) ended (queued ones cancelled, running ones lost)\n",
              cli::printable(*name).c_str(), static_cast<unsigned long long>(ended));
  return 0;
}

int command_tasks(HubClient& client, const cli::CommandLine& line) {
  if (!line.operands.empty()) return usage_error("tasks: unexpected '" + line.operands[0] + "'");
  std::string query;
  const bool as_json = line.has("--json");
  for (const char* flag : {"--state", "--limit"}) {
    if (line.has(flag)) {
      query += (query.empty() ? "?" : "&") + std::string(flag + 2) + "=" +
               core::url_encode(line.value(flag));
    }
  }
  auto reply = client.get("/api/v1/tasks" + query);
  if (!reply) return hub_error(reply.error());
  if (as_json) {
    std::printf("%s\n", cli::printable_json(reply->body).c_str());
    return 0;
  }
  auto tasks = protocol::decode_task_list(reply->body);
  if (!tasks) return hub_error(tasks.error());
  std::printf("%-20s %-10s %-16s %-24s %s\n", "TASK", "STATE", "AGENT", "CREATED", "COMMAND");
  for (const auto& decoded : *tasks) {
    const protocol::TaskView& task = decoded.task;
    std::string command = decoded.command.shell;
    for (const auto& arg : decoded.command.argv)
      command += (command.empty() ? "" : " ") + arg;
    // One row per task, with every control of a script made visible.
    command = cli::printable(command);
    if (command.size() > 60) command = command.substr(0, 57) + "...";
    std::printf("%-20s %-10s %-16s %-24s %s\n", cli::printable(task.id).c_str(),
                cli::printable(task.state).c_str(),
                // A pool task no agent has taken yet: "any" (its selector: tether status).
                task.agent.empty() ? "(any)" : cli::printable(task.agent).c_str(),
                cli::printable(task.created_at).c_str(), command.c_str());
  }
  return 0;
}

int command_agents(HubClient& client, const cli::CommandLine& line) {
  if (!line.operands.empty()) return usage_error("agents: unexpected '" + line.operands[0] + "'");
  const bool as_json = line.has("--json");
  auto reply = client.get(line.has("--selector") ? "/api/v1/agents?selector=" +
                                                       core::url_encode(line.value("--selector"))
                                                 : std::string("/api/v1/agents"));
  if (!reply) return hub_error(reply.error());
  if (as_json) {
    std::printf("%s\n", cli::printable_json(reply->body).c_str());
    return 0;
  }
  auto agents = protocol::decode_agent_list(reply->body);
  if (!agents) return hub_error(agents.error());
  std::printf("%-20s %-10s %-24s %-8s %-8s %-24s %s\n", "AGENT", "CONNECTED", "LAST SEEN",
              "VERSION", "RUNNING", "OUTBOX", "LABELS");
  for (const auto& agent : *agents) {
    const std::string depth = agent.outbox_rows
                                  ? std::to_string(*agent.outbox_rows) + " rows, " +
                                        std::to_string(agent.outbox_bytes.value_or(0)) + " bytes"
                                  : "-";
    // The version is whatever the agent's hello said.
    std::printf("%-20s %-10s %-24s %-8s %-8llu %-24s %s\n", cli::printable(agent.name).c_str(),
                agent.connected ? "yes" : "no", cli::printable(agent.last_seen_at).c_str(),
                cli::printable(agent.version).c_str(),
                static_cast<unsigned long long>(agent.running_attempts), depth.c_str(),
                cli::printable(protocol::format_labels(agent.labels)).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Writes to a closed socket come back as EPIPE; a closed stdout is
  // handled where it is written (the task follower), ending with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  // The CLI talks to people through its own messages; the library's info
  // lines (an address that failed before the next one answered) stay quiet.
  core::set_log_level(core::LogLevel::kWarning);
  std::vector<std::string> words(argv + 1, argv + argc);
  size_t at = 0;
  std::vector<std::string> leading;  // connection options before the command
  for (; at < words.size() && words[at].rfind("-", 0) == 0; ++at) {
    const std::string& flag = words[at];
    if (flag == "--help" || flag == "-h") {
      std::fputs(cli::kUsage, stdout);
      return 0;
    }
    if (flag == "--version") {
      std::printf("tether %s\n", TETHER_VERSION);
      return 0;
    }
    leading.push_back(flag);
    if (flag.find('=') == std::string::npos && at + 1 < words.size())
      leading.push_back(words[++at]);
  }
  auto global = cli::parse_command_line(leading, cli::connection_options());
  if (!global) return usage_error(global.error().message);
  if (!global->operands.empty()) return usage_error("unexpected '" + global->operands[0] + "'");
  if (at >= words.size()) return usage_error("no command");
  const std::string command = words[at];
  const auto& table = cli::command_options();
  auto options = table.find(command);
  if (options == table.end()) return usage_error("unknown command '" + command + "'");
  auto line = cli::parse_command_line(
      std::vector<std::string>(words.begin() + static_cast<long>(at) + 1, words.end()),
      options->second);
  if (!line) return usage_error(command + ": " + line.error().message);
  if (command != "run" && !line->after_dashes.empty()) {
    line->operands.insert(line->operands.end(), line->after_dashes.begin(),
                          line->after_dashes.end());
  }
  auto connection =
      cli::resolve_connection(line->value("--hub-url", global->value("--hub-url")),
                              line->value("--token-file", global->value("--token-file")),
                              line->value("--ca-file", global->value("--ca-file")));
  if (!connection) {
    std::fprintf(stderr, "tether: %s\n", cli::printable(connection.error().message).c_str());
    return kExitUsage;
  }
  cli::HubClient client(std::move(*connection));
  if (command == "run") return command_run(client, *line);
  if (command == "logs") return command_logs(client, *line);
  if (command == "runs") return command_status_of(cli::list_runs(client, *line));
  if (command == "run-status") return command_status_of(cli::show_run(client, *line));
  if (command == "status") return command_status(client, *line);
  if (command == "cancel") return command_cancel(client, *line);
  if (command == "tasks") return command_tasks(client, *line);
  if (command == "remove-agent") return command_remove_agent(client, *line);
  if (command == "audit") return command_status_of(cli::run_audit_command(client, *line));
  return command_agents(client, *line);
}
