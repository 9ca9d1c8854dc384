#include "agent/exec_command.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <random>

#include "agent/agent_config.hpp"
#include "agent/task_executor.hpp"
#include "agent/task_init_program.hpp"
#include "agent/task_isolation.hpp"
#include "core/run.hpp"
#include "core/wall_clock.hpp"
#include "protocol/frames.hpp"

namespace tether::agent {

namespace {

constexpr const char* kUsage =
    "usage: tether-agent exec [options] -- COMMAND [ARGS...]\n"
    "\n"
    "Runs COMMAND through the agent's task runner and prints each frame it\n"
    "produces (task.started, task.output, task.final) as one JSON object per\n"
    "line on stdout. Exits 0 once the final frame is printed, 2 on bad usage.\n"
    "\n"
    "options:\n"
    "  --interval-ms N   flush interval in milliseconds (default 2)\n"
    "  --chunk-bytes N   largest chunk in bytes, at least 4 (default 65536)\n"
    "  --timeout S       stop the command after S seconds (default: none)\n"
    "  --grace-ms N      SIGTERM-to-SIGKILL grace in milliseconds (default 10000)\n"
    "  --cwd DIR         working directory (absolute)\n"
    "  --env NAME=VALUE  add a variable to the command's environment (repeatable)\n"
    "  --shell           run COMMAND as a /bin/sh -c script\n"
    "  --memory-max SIZE, --cpu-max CPUS, --pids-max N\n"
    "                    the task's limits (docs/protocol.md 3; they need --cgroup auto)\n"
    "\n"
    "Isolation, as `tether-agent run` has it (docs/operations.md); without these\n"
    "flags COMMAND runs as this user, under the subreaper alone:\n"
    "  --run-as USER         run as USER (needs CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN)\n"
    "  --task-uid-range A-B  run as a uid of its own from A-B\n"
    "  --cgroup auto|off     a cgroup v2 of its own where delegated (default off)\n"
    "  --home-root DIR       where its HOME is made (default: a new directory in /tmp)\n";

Error option_error(const std::string& message) {
  return make_error(Errc::kInvalid, "usage", message);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tether-agent exec: %s\n\n%s", message.c_str(), kUsage);
  return 2;
}

bool parse_number(const std::string& text, uint64_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

std::string random_id(const char* prefix) {
  std::random_device device;
  char text[40];
  std::snprintf(text, sizeof text, "%s-%08x%08x", prefix, device(), device());
  return text;
}

// A home root for one exec, removed when it ends.
class TemporaryHomeRoot {
 public:
  TemporaryHomeRoot() {
    char pattern[] = "/tmp/tether-exec-homes-XXXXXX";
    if (::mkdtemp(pattern)) path_ = pattern;
  }
  ~TemporaryHomeRoot() {
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  TemporaryHomeRoot(const TemporaryHomeRoot&) = delete;
  TemporaryHomeRoot& operator=(const TemporaryHomeRoot&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One `--flag VALUE` option into the options, the task or the isolation
// settings (agent.conf lines). Errors: the message for usage_error.
Result<void> apply_option(const std::string& arg, const std::string& value,
                          ExecutorOptions& options, protocol::TaskSpec& task,
                          std::string& isolation_settings) {
  uint64_t number = 0;
  if (arg == "--interval-ms" || arg == "--chunk-bytes" || arg == "--timeout" ||
      arg == "--grace-ms") {
    if (!parse_number(value, number)) {
      return option_error(arg + ": '" + value + "' is not a non-negative integer");
    }
  }
  if (arg == "--interval-ms") {
    options.runner.chunker.flush_interval_ms = number;
  } else if (arg == "--chunk-bytes") {
    if (number < 4) return option_error("--chunk-bytes: must be at least 4");
    options.runner.chunker.chunk_bytes = number;
  } else if (arg == "--timeout") {
    task.timeout_s = number;
  } else if (arg == "--grace-ms") {
    options.runner.kill_grace_ms = number;
  } else if (arg == "--run-as" || arg == "--task-uid-range" || arg == "--cgroup" ||
             arg == "--home-root") {
    const std::string key = arg == "--run-as"           ? "run_as"
                            : arg == "--task-uid-range" ? "task_uid_range"
                            : arg == "--cgroup"         ? "cgroup"
                                                        : "task_home_root";
    if (value.find('\n') != std::string::npos) return option_error(arg + ": one line only");
    isolation_settings += key + " = " + value + "\n";
  } else if (arg == "--memory-max" || arg == "--cpu-max" || arg == "--pids-max") {
    std::string limit = arg.substr(2);
    std::replace(limit.begin(), limit.end(), '-', '_');
    if (auto set = protocol::set_limit(limit, value, task.limits); !set) {
      return option_error(arg + ": " + set.error().message);
    }
  } else if (arg == "--cwd") {
    task.cwd = value;
  } else if (arg == "--env") {
    const auto equals = value.find('=');
    if (equals == std::string::npos || equals == 0) {
      return option_error("--env: expected NAME=VALUE, got '" + value + "'");
    }
    task.env[value.substr(0, equals)] = value.substr(equals + 1);
  } else {
    return option_error("unknown option " + arg);
  }
  return {};
}

// The isolation the flags ask for (`settings`: agent.conf lines); the home
// root is a new directory in /tmp unless --home-root names one.
Result<std::shared_ptr<TaskIsolation>> exec_isolation(
    const std::string& settings, std::optional<TemporaryHomeRoot>& temporary_root) {
  AgentConfig config;
  config.cgroup = false;
  TETHER_TRY(applied, apply_config_text(config, settings, "exec flags"));
  if (config.task_home_root.empty()) {
    temporary_root.emplace();
    if (temporary_root->path().empty()) {
      return make_error(Errc::kIo, "task_home_root", "cannot create a home root in /tmp");
    }
    config.task_home_root = temporary_root->path();
  }
  return TaskIsolation::from_config(config);
}

// Prints each report as the protocol frame an agent would send (agent_id
// "local"), one per line, flushed so a reader sees frames live.
class JsonLinesSink final : public AttemptSink {
 public:
  explicit JsonLinesSink(protocol::AttemptRef attempt) : attempt_(std::move(attempt)) {}

  void on_started(const protocol::StartedReport& started, int) override {
    write(protocol::started_message_id(attempt_.attempt_id),
          protocol::TaskStarted{attempt_, started});
  }
  void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256&) override {
    auto id = protocol::output_message_id(attempt_.attempt_id, chunk.stream, chunk.seq);
    write(std::move(id), protocol::TaskOutput{attempt_, std::move(chunk)});
  }
  void on_final(const protocol::FinalReport& final_report) {
    write(protocol::final_message_id(attempt_.attempt_id),
          protocol::TaskFinal{attempt_, final_report});
  }

 private:
  void write(std::string message_id, protocol::FramePayload payload) {
    protocol::Frame frame;
    frame.message_id = std::move(message_id);
    frame.agent_id = "local";
    frame.sent_at = core::utc_now();
    frame.payload = std::move(payload);
    const std::string line = protocol::encode_frame(frame);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  protocol::AttemptRef attempt_;
};

core::Co<protocol::FinalReport> run_one(TaskExecutor& executor, protocol::TaskSpec task,
                                        JsonLinesSink& sink) {
  co_return co_await executor.execute(std::move(task), sink);
}

}  // namespace

int exec_command(const std::vector<std::string>& args) {
  ExecutorOptions options;
  options.max_concurrent_tasks = 1;
  std::string isolation_settings;  // agent.conf lines from the isolation flags
  protocol::TaskSpec task;
  bool shell = false;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--shell") {
      shell = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) break;  // the command starts here
    if (i + 1 >= args.size()) return usage_error(arg + " needs a value");
    const std::string& value = args[++i];
    if (auto applied = apply_option(arg, value, options, task, isolation_settings); !applied)
      return usage_error(applied.error().message);
  }
  if (i >= args.size()) return usage_error("no command given");
  if (shell) {
    if (args.size() - i != 1) return usage_error("--shell takes exactly one script argument");
    task.shell = args[i];
  } else {
    task.argv.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  }
  task.task_id = random_id("exec");
  task.attempt_id = task.task_id + "-1";
  if (auto valid = protocol::validate_task(task); !valid) return usage_error(valid.error().message);

  std::optional<TemporaryHomeRoot> temporary_root;
  if (!isolation_settings.empty()) {
    auto isolation = exec_isolation(isolation_settings, temporary_root);
    if (!isolation) return usage_error(isolation.error().message);
    options.runner.isolation = std::move(*isolation);
  }

  if (auto init = check_task_init_program(options.runner.task_init_program); !init) {
    std::fprintf(stderr, "tether-agent exec: %s\n", init.error().message.c_str());
    return 2;
  }
  core::Loop loop;
  TaskExecutor executor(loop, options);
  JsonLinesSink sink({task.task_id, task.attempt_id});
  auto final_report = core::run_to_completion(loop, run_one(executor, std::move(task), sink));
  sink.on_final(final_report);
  return 0;
}

}  // namespace tether::agent
