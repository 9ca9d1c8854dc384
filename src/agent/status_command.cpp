#include "agent/status_command.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sys/stat.h>

#include <cstdio>
#include <optional>

#include "agent/agent_config.hpp"
#include "agent/attempt_journal.hpp"
#include "agent/frame_store.hpp"
#include "core/report_socket.hpp"
#include "core/wall_clock.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::agent {

namespace {

constexpr const char* kDefaultConfig = "/etc/tether/agent.conf";
constexpr int kAnswerTimeoutMs = 3000;

constexpr const char* kUsage =
    "usage: tether-agent status [--config FILE] [--state-dir DIR] [--json]\n"
    "\n"
    "Shows the running agent (asked over STATE_DIR/status.sock) and its outbox\n"
    "(STATE_DIR/outbox.db, read-only). The state directory comes from --state-dir,\n"
    "else from the config file (--config, default /etc/tether/agent.conf if present).\n"
    "Exit status: 0 the agent answered, 3 it is not running, 1 an error.\n";

struct OutboxView {
  std::string path;
  bool exists = false;
  std::string error;
  uint64_t frames = 0;
  uint64_t started = 0;
  uint64_t output = 0;
  uint64_t gaps = 0;
  uint64_t finals = 0;
  uint64_t output_bytes = 0;
  std::string oldest_created_at;
  int64_t oldest_age_ms = 0;
  uint64_t attempts_running = 0;
  uint64_t attempts_finished = 0;
  uint64_t dropped_bytes = 0;
  uint64_t file_bytes = 0;
};

uint64_t file_size(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? static_cast<uint64_t>(info.st_size) : 0;
}

OutboxView read_outbox(const std::string& state_dir) {
  OutboxView view;
  view.path = state_dir + "/outbox.db";
  const uint64_t database_bytes = file_size(view.path);
  view.exists = database_bytes > 0;
  if (!view.exists) return view;
  view.file_bytes = database_bytes + file_size(view.path + "-wal");
  try {
    SQLite::Database database(view.path, SQLite::OPEN_READONLY);
    database.exec("PRAGMA busy_timeout = 2000");
    const FramesCensus frames = FrameStore::census(database);
    view.frames = frames.frames;
    view.started = frames.started;
    view.output = frames.output;
    view.gaps = frames.gaps;
    view.finals = frames.finals;
    view.output_bytes = frames.output_bytes;
    view.oldest_created_at = frames.oldest_created_at;
    if (const int64_t at = core::parse_utc_ms(view.oldest_created_at); at >= 0) {
      view.oldest_age_ms = std::max<int64_t>(0, core::utc_now_ms() - at);
    }
    const AttemptsCensus attempts = AttemptJournal::census(database);
    view.attempts_running = attempts.running;
    view.attempts_finished = attempts.finished;
    view.dropped_bytes = attempts.dropped_bytes;
  } catch (const SQLite::Exception& e) {
    view.error = std::string("cannot read the outbox: ") + e.what();
  }
  return view;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
  }
  return text;
}

std::string human_duration(uint64_t seconds) {
  if (seconds < 60) return std::to_string(seconds) + "s";
  if (seconds < 3600)
    return std::to_string(seconds / 60) + "m" + std::to_string(seconds % 60) + "s";
  if (seconds < 86400)
    return std::to_string(seconds / 3600) + "h" + std::to_string(seconds / 60 % 60) + "m";
  return std::to_string(seconds / 86400) + "d" + std::to_string(seconds / 3600 % 24) + "h";
}

std::string text_of(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject() || !object.HasMember(name) || !object[name].IsString()) return {};
  return object[name].GetString();
}

uint64_t number_of(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject() || !object.HasMember(name) || !object[name].IsUint64()) return 0;
  return object[name].GetUint64();
}

void print_agent(const rapidjson::Document& agent) {
  std::printf("agent:     %s (tether-agent %s, pid %llu), up %s%s\n",
              text_of(agent, "agent").c_str(), text_of(agent, "version").c_str(),
              static_cast<unsigned long long>(number_of(agent, "pid")),
              human_duration(number_of(agent, "uptime_s")).c_str(),
              agent["stopping"].IsBool() && agent["stopping"].GetBool() ? ", shutting down" : "");
  std::printf("hub:       %s\n", text_of(agent, "hub").c_str());
  const auto& channel = agent["channel"];
  const std::string state = text_of(channel, "state");
  std::printf("channel:   %s since %s, %llu reconnect(s)\n", state.c_str(),
              text_of(channel, "since").c_str(),
              static_cast<unsigned long long>(number_of(channel, "reconnects")));
  if (state != "connected" && !text_of(channel, "last_error").empty()) {
    std::printf("           last error: %s\n", text_of(channel, "last_error").c_str());
  }
  const auto& poller = agent["poller"];
  const std::string last_poll = text_of(poller, "last_success");
  std::printf("last poll: %s, %llu failure(s)\n",
              last_poll.empty() ? "none succeeded yet" : (last_poll + " (ok)").c_str(),
              static_cast<unsigned long long>(number_of(poller, "failures")));
  if (!text_of(poller, "last_error").empty()) {
    std::printf("           last error: %s\n", text_of(poller, "last_error").c_str());
  }
  const auto& running = agent["running"];
  std::printf("tasks:     %u of %llu running\n", running.Size(),
              static_cast<unsigned long long>(number_of(agent, "max_concurrent_tasks")));
  for (const auto& attempt : running.GetArray()) {
    std::printf("           %s  attempt %s  pid %llu  since %s  stdout %s  stderr %s\n",
                text_of(attempt, "task_id").c_str(), text_of(attempt, "attempt_id").c_str(),
                static_cast<unsigned long long>(number_of(attempt, "pid")),
                text_of(attempt, "started_at").c_str(),
                human_bytes(number_of(attempt, "stdout_bytes")).c_str(),
                human_bytes(number_of(attempt, "stderr_bytes")).c_str());
  }
  const auto& outbox = agent["outbox"];
  std::printf("dropped:   %s since start (outbox full)\n",
              human_bytes(number_of(outbox, "dropped_bytes_since_start")).c_str());
  std::printf("outbox:    %s of %s used\n", human_bytes(number_of(outbox, "bytes")).c_str(),
              human_bytes(number_of(outbox, "max_bytes")).c_str());
}

void print_outbox(const OutboxView& view) {
  std::printf("outbox:    %s\n", view.path.c_str());
  if (!view.exists) {
    std::printf("           no outbox yet\n");
    return;
  }
  if (!view.error.empty()) {
    std::printf("           %s\n", view.error.c_str());
    return;
  }
  std::printf(
      "           %llu frame(s) waiting: %llu output (%s), %llu gap, %llu started, %llu "
      "final\n",
      static_cast<unsigned long long>(view.frames), static_cast<unsigned long long>(view.output),
      human_bytes(view.output_bytes).c_str(), static_cast<unsigned long long>(view.gaps),
      static_cast<unsigned long long>(view.started), static_cast<unsigned long long>(view.finals));
  if (view.frames > 0) {
    std::printf("           oldest stored %s, %s ago\n", view.oldest_created_at.c_str(),
                human_duration(static_cast<uint64_t>(view.oldest_age_ms / 1000)).c_str());
  }
  std::printf(
      "           attempts held: %llu running, %llu finished (final unacked); %s "
      "dropped\n",
      static_cast<unsigned long long>(view.attempts_running),
      static_cast<unsigned long long>(view.attempts_finished),
      human_bytes(view.dropped_bytes).c_str());
  std::printf("           file size %s\n", human_bytes(view.file_bytes).c_str());
}

std::string outbox_json(const OutboxView& view) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("path", view.path);
  json.field("exists", view.exists);
  if (!view.error.empty()) json.field("error", view.error);
  json.field("frames", view.frames);
  json.key("by_kind");
  json.begin_object();
  json.field("started", view.started);
  json.field("output", view.output);
  json.field("gap", view.gaps);
  json.field("final", view.finals);
  json.end_object();
  json.field("output_bytes", view.output_bytes);
  json.field("oldest_created_at", view.oldest_created_at);
  json.field("oldest_age_ms", view.oldest_age_ms);
  json.field("attempts_running", view.attempts_running);
  json.field("attempts_finished", view.attempts_finished);
  json.field("dropped_bytes", view.dropped_bytes);
  json.field("file_bytes", view.file_bytes);
  json.end_object();
  return json.str();
}

}  // namespace

// The running agent's answer as a document in `agent`, or why there is
// none (empty when there is one).
std::string read_answer(const Result<std::string>& answer, const std::string& socket_path,
                        std::optional<rapidjson::Document>& agent) {
  if (answer) {
    auto parsed = protocol::parse_json_object(*answer, "status");
    if (!parsed) return "the agent's answer is unreadable: " + parsed.error().message;
    agent = std::move(*parsed);
    return {};
  }
  if (answer.error().kind == Errc::kState) {  // not_running
    return "not running (nothing answers on " + socket_path + ")";
  }
  if (answer.error().kind == Errc::kUnauthorized) {  // permission_denied
    // Not "not running": whether it runs is exactly what cannot be seen.
    return "cannot ask the agent: " + answer.error().message +
           ". Run this as root or as a member of the agent's group (tether)";
  }
  return answer.error().message;
}

int status_command(const std::vector<std::string>& args) {
  bool as_json = false;
  std::vector<std::string> settings_args;
  std::optional<std::string> state_dir;
  bool have_config = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args[i] == "--json") {
      as_json = true;
    } else if ((args[i] == "--config" || args[i] == "--state-dir") && i + 1 < args.size()) {
      if (args[i] == "--state-dir") state_dir = args[i + 1];
      have_config |= args[i] == "--config";
      settings_args.push_back(args[i]);
      settings_args.push_back(args[i + 1]);
      ++i;
    } else {
      std::fprintf(stderr, "tether-agent status: unexpected argument '%s'\n\n%s", args[i].c_str(),
                   kUsage);
      return 2;
    }
  }
  if (!have_config && !state_dir) {
    struct stat info {};
    if (::stat(kDefaultConfig, &info) == 0) {
      settings_args.insert(settings_args.begin(), {"--config", kDefaultConfig});
    }
  }
  auto settings = read_agent_settings(settings_args);
  if (!settings) {
    std::fprintf(stderr, "tether-agent status: %s\n", settings.error().message.c_str());
    return 2;
  }
  const std::string socket_path = settings->state_dir + "/status.sock";
  auto answer = core::read_report_socket(socket_path, kAnswerTimeoutMs);
  std::optional<rapidjson::Document> agent;
  const std::string agent_error = read_answer(answer, socket_path, agent);
  const OutboxView outbox = read_outbox(settings->state_dir);

  if (as_json) {
    protocol::JsonWriter json;
    json.begin_object();
    json.key("agent");
    if (agent) {
      json.raw(*answer);
    } else {
      json.null();
      json.field("agent_error", agent_error);
    }
    json.key("outbox");
    json.raw(outbox_json(outbox));
    json.end_object();
    std::printf("%s\n", json.str().c_str());
  } else {
    if (agent) {
      print_agent(*agent);
    } else {
      std::printf("agent:     %s\n", agent_error.c_str());
    }
    print_outbox(outbox);
  }
  if (!agent) return !answer && answer.error().kind == Errc::kState ? 3 : 1;
  return outbox.error.empty() ? 0 : 1;
}

}  // namespace tether::agent
