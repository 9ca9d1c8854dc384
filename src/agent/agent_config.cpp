#include "agent/agent_config.hpp"

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "agent/task_users.hpp"
#include "core/listen_address.hpp"
#include "core/resolver.hpp"
#include "core/secret_file.hpp"
#include "protocol/frames.hpp"
#include "protocol/task_spec.hpp"

namespace tether::agent {

namespace {

using Setter = std::function<Result<void>(AgentConfig&, const std::string&)>;

struct Key {
  const char* name;
  const char* help;
  Setter set;
};

Result<uint64_t> number(const std::string& value, uint64_t min, uint64_t max) {
  uint64_t parsed = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
    return make_error(Errc::kInvalid, "invalid", "'" + value + "' is not a non-negative integer");
  }
  if (parsed < min || parsed > max) {
    return make_error(Errc::kInvalid, "invalid",
                      "must be from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return parsed;
}

Setter number_key(uint64_t AgentConfig::*field, uint64_t min, uint64_t max) {
  return [field, min, max](AgentConfig& config, const std::string& value) -> Result<void> {
    TETHER_TRY(parsed, number(value, min, max));
    config.*field = *parsed;
    return {};
  };
}

// One of a few words, each meaning one value of the field.
template <class T>
Setter choice_key(T AgentConfig::*field, std::vector<std::pair<std::string, T>> choices,
                  std::string expected) {
  return [field, choices = std::move(choices), expected = std::move(expected)](
             AgentConfig& config, const std::string& value) -> Result<void> {
    for (const auto& [word, meaning] : choices) {
      if (value == word) {
        config.*field = meaning;
        return {};
      }
    }
    return make_error(Errc::kInvalid, "invalid", expected);
  };
}

Result<void> set_hub_url(AgentConfig& config, const std::string& value) {
  auto url = core::parse_url(value);
  if (!url) return make_error(Errc::kInvalid, "invalid", url.error().message);
  if (url->scheme != "http" && url->scheme != "https") {
    return make_error(Errc::kInvalid, "invalid", "must be http:// or https://");
  }
  config.hub_url = *url;
  return {};
}

Result<void> set_agent_name(AgentConfig& config, const std::string& value) {
  if (!protocol::is_valid_id(value)) {
    return make_error(Errc::kInvalid, "invalid",
                      "must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
  }
  config.agent = value;
  return {};
}

Result<void> set_metrics_listen(AgentConfig& config, const std::string& value) {
  auto address = core::parse_listen_address(value, "metrics_listen");
  if (!address)
    return make_error(Errc::kInvalid, "invalid", "expected address:port, e.g. 127.0.0.1:9465");
  config.metrics_listen = value;
  return {};
}

Result<void> set_labels(AgentConfig& config, const std::string& value) {
  auto labels = protocol::parse_labels(value);
  if (!labels) return make_error(Errc::kInvalid, "invalid", labels.error().message);
  if (labels->size() > protocol::kMaxLabels) {
    return make_error(Errc::kInvalid, "invalid",
                      "more than " + std::to_string(protocol::kMaxLabels) + " labels");
  }
  config.labels = std::move(*labels);
  return {};
}

Result<void> set_log_level(AgentConfig& config, const std::string& value) {
  if (!core::parse_log_level(value, config.log_level)) {
    return make_error(Errc::kInvalid, "invalid", "expected debug, info, warning or error");
  }
  return {};
}

Result<void> set_task_uid_range(AgentConfig& config, const std::string& value) {
  auto range = parse_uid_range(value);
  if (!range) return range.error();
  config.task_uid_first = range->first;
  config.task_uid_last = range->second;
  return {};
}

Setter text_key(std::string AgentConfig::*field) {
  return [field](AgentConfig& config, const std::string& value) -> Result<void> {
    if (value.empty()) return make_error(Errc::kInvalid, "invalid", "must not be empty");
    config.*field = value;
    return {};
  };
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      {"hub_url", "the hub, e.g. https://hub.example:7070 (required)", set_hub_url},
      {"agent", "this agent's name, as registered with `tether-hub agent add` (required)",
       set_agent_name},
      {"token_file", "file holding the agent token, mode 0600 (or TETHER_AGENT_TOKEN_FILE)",
       text_key(&AgentConfig::token_file)},
      {"state_dir", "where the outbox lives (default /var/lib/tether)",
       text_key(&AgentConfig::state_dir)},
      {"ca_file", "extra CA certificates (PEM) to trust for the hub",
       text_key(&AgentConfig::ca_file)},
      {"insecure", "true to allow plain http to a hub that is not on loopback (default false)",
       choice_key<bool>(&AgentConfig::insecure, {{"true", true}, {"false", false}},
                        "expected true or false")},
      {"max_concurrent_tasks", "tasks run at once (default 4)",
       number_key(&AgentConfig::max_concurrent_tasks, 1, 1024)},
      {"flush_interval_ms", "longest a byte of output waits before it is framed (default 2)",
       number_key(&AgentConfig::flush_interval_ms, 1, 10'000)},
      {"flush_interval_busy_ms",
       "the same while the agent is busy (over 5,000 pipe reads a second; default 25)",
       number_key(&AgentConfig::flush_interval_busy_ms, 1, 10'000)},
      {"chunk_bytes", "largest output chunk in bytes (default 65536, at most 131072)",
       number_key(&AgentConfig::chunk_bytes, 1024, protocol::kMaxChunkBytes)},
      {"outbox_max_bytes", "outbox size cap in bytes (default 268435456)",
       number_key(&AgentConfig::outbox_max_bytes, 1 << 20, 1ull << 40)},
      {"outbox_min_free_bytes",
       "output waits while the outbox's filesystem has less free (default 16777216)",
       number_key(&AgentConfig::outbox_min_free_bytes, 0, 1ull << 40)},
      {"outbox_full_policy", "drop-oldest (default) or block",
       choice_key<OutboxFullPolicy>(
           &AgentConfig::outbox_full_policy,
           {{"drop-oldest", OutboxFullPolicy::kDropOldest}, {"block", OutboxFullPolicy::kBlock}},
           "expected drop-oldest or block")},
      {"outbox_sync", "normal (default: survives a crash of the agent) or full (also a power loss)",
       choice_key<bool>(&AgentConfig::outbox_sync_full, {{"normal", false}, {"full", true}},
                        "expected normal or full")},
      {"poll_wait_s", "long-poll wait in seconds (default 30)",
       number_key(&AgentConfig::poll_wait_s, 1, 60)},
      {"shutdown_grace_s", "on SIGTERM, how long running tasks may finish (default 30)",
       number_key(&AgentConfig::shutdown_grace_s, 0, 86'400)},
      {"send_window_bytes", "unacked output in flight on the channel (default 8388608)",
       number_key(&AgentConfig::send_window_bytes, 64 * 1024, 1ull << 30)},
      {"keepalive_s", "ping an idle channel after this many seconds; dead after 3x (default 15)",
       number_key(&AgentConfig::keepalive_s, 1, 3600)},
      {"kill_grace_s", "SIGTERM to SIGKILL grace when stopping a task (default 10)",
       number_key(&AgentConfig::kill_grace_s, 0, 3600)},
      {"metrics_listen",
       "serve Prometheus metrics on this address:port, e.g. 127.0.0.1:9465 (default off)",
       set_metrics_listen},
      {"log_level", "debug, info (default), warning or error", set_log_level},
      {"labels", "key=value pairs describing this host, e.g. role=web, region=eu (default none)",
       set_labels},
      {"run_as", "the user tasks run as (default tether-task; docs/operations.md)",
       text_key(&AgentConfig::run_as)},
      {"task_uid_range", "FIRST-LAST: a uid of its own for each running attempt, e.g. 61184-61439",
       set_task_uid_range},
      {"cgroup", "auto (default: a cgroup v2 per attempt where delegated) or off",
       choice_key<bool>(&AgentConfig::cgroup, {{"auto", true}, {"off", false}},
                        "expected auto or off")},
      {"task_home_root", "where each attempt's HOME is made (default STATE_DIR/homes)",
       text_key(&AgentConfig::task_home_root)},
  };
  return table;
}

const Key* find_key(const std::string& name) {
  for (const auto& key : keys()) {
    if (name == key.name) return &key;
  }
  return nullptr;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

}  // namespace

Result<void> apply_config_text(AgentConfig& config, const std::string& text,
                               const std::string& path) {
  std::istringstream lines(text);
  std::string line;
  int number_of_line = 0;
  while (std::getline(lines, line)) {
    ++number_of_line;
    const std::string where = path + ":" + std::to_string(number_of_line) + ": ";
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const auto equals = line.find('=');
    if (equals == std::string::npos) {
      return make_error(Errc::kInvalid, "config",
                        where + "expected key = value, got '" + line + "'");
    }
    const std::string name = trim(line.substr(0, equals));
    const std::string value = trim(line.substr(equals + 1));
    const Key* key = find_key(name);
    if (!key) return make_error(Errc::kInvalid, "config", where + "unknown key '" + name + "'");
    if (auto set = key->set(config, value); !set) {
      return make_error(Errc::kInvalid, "config", where + name + ": " + set.error().message);
    }
    config.origins[name] = path + ":" + std::to_string(number_of_line);
  }
  return {};
}

std::string AgentConfig::origin_of(const std::string& key) const {
  auto it = origins.find(key);
  return it == origins.end() ? "default" : it->second;
}

Result<AgentConfig> read_agent_settings(const std::vector<std::string>& args) {
  AgentConfig config;
  std::vector<std::pair<std::string, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0)
      return make_error(Errc::kInvalid, "usage", "unexpected argument '" + arg + "'");
    if (i + 1 >= args.size()) return make_error(Errc::kInvalid, "usage", arg + " needs a value");
    if (arg == "--config") {
      config.config_file = args[++i];
      continue;
    }
    std::string name = arg.substr(2);
    for (auto& c : name)
      c = c == '-' ? '_' : c;
    if (!find_key(name)) return make_error(Errc::kInvalid, "usage", "unknown option " + arg);
    flags.emplace_back(name, args[++i]);
  }
  if (!config.config_file.empty()) {
    std::ifstream file(config.config_file);
    if (!file)
      return make_error(Errc::kInvalid, "config",
                        "cannot read config file '" + config.config_file + "'");
    std::stringstream text;
    text << file.rdbuf();
    if (auto applied = apply_config_text(config, text.str(), config.config_file); !applied)
      return applied.error();
  }
  if (const char* from_env = std::getenv(kTokenFileVariable); from_env && *from_env) {
    config.token_file = from_env;
    config.origins["token_file"] = std::string("environment ") + kTokenFileVariable;
  }
  // The operator CLI's variables: never the agent's settings.
  for (const char* theirs : {"TETHER_TOKEN_FILE", "TETHER_HUB_URL", "TETHER_CA_FILE"}) {
    if (const char* value = std::getenv(theirs); value && *value) {
      config.ignored_variables.emplace_back(theirs);
    }
  }
  for (const auto& [name, value] : flags) {
    std::string flag = name;
    for (auto& c : flag)
      c = c == '_' ? '-' : c;
    if (auto set = find_key(name)->set(config, value); !set) {
      return make_error(Errc::kInvalid, "config", "--" + flag + ": " + set.error().message);
    }
    config.origins[name] = "--" + flag;
  }
  return config;
}

Result<AgentConfig> load_agent_config(const std::vector<std::string>& args) {
  TETHER_TRY(settings, read_agent_settings(args));
  AgentConfig config = std::move(*settings);
  // Said plainly: a freshly installed agent stops here until it is configured.
  const std::string where = config.config_file.empty() ? "" : " in " + config.config_file;
  if (config.hub_url.host.empty()) {
    return make_error(
        Errc::kInvalid, "not_configured",
        "hub_url is not set" + where + " (or --hub-url): the agent does not know its hub");
  }
  if (config.agent.empty()) {
    return make_error(Errc::kInvalid, "not_configured",
                      "agent is not set" + where + " (or --agent): the agent's registered name");
  }
  if (config.token_file.empty()) {
    return make_error(
        Errc::kInvalid, "not_configured",
        "no token: set token_file" + where + ", --token-file or " + kTokenFileVariable);
  }
  // Decided on what the name resolves to now (and again at every connect):
  // "127.0.0.1.example.invalid" is a name like any other.
  if (!config.insecure) {
    if (auto plain = core::check_plain_text_allowed(config.hub_url.host, config.hub_url.uses_tls(),
                                                    core::PlainTextPolicy::kLoopbackOnly);
        !plain) {
      return make_error(Errc::kInvalid, "config",
                        "hub_url " + config.hub_url.origin() + ": " + plain.error().message +
                            ", or set insecure = true");
    }
  }
  TETHER_TRY(token, core::read_secret_file(config.token_file));
  config.token = std::move(*token);
  return config;
}

std::string config_help() {
  std::string help;
  for (const auto& key : keys()) {
    std::string name = key.name;
    help +=
        "  " + name + std::string(name.size() < 22 ? 22 - name.size() : 1, ' ') + key.help + "\n";
  }
  return help;
}

}  // namespace tether::agent
