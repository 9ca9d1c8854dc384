// AgentConfig: the settings of `tether-agent run`.
//
// A small file of `key = value` lines (# starts a comment); every key can
// also be given as a flag (`--hub-url URL` for `hub_url`), and the token
// file also as TETHER_AGENT_TOKEN_FILE. Flags win over the environment,
// which wins over the file. An unknown key or a bad value stops the agent at
// start with the file, the line, the key and the reason. docs/agent.md lists
// the keys. The agent reads only TETHER_AGENT_* variables: TETHER_TOKEN_FILE
// and TETHER_HUB_URL are the operator CLI's, and an agent started from an
// operator's shell must not pick up the operator's token.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/result.hpp"
#include "core/url.hpp"
#include "protocol/labels.hpp"

namespace tether::agent {

enum class OutboxFullPolicy { kDropOldest, kBlock };

struct AgentConfig {
  core::Url hub_url;
  std::string agent;
  std::string token_file;
  std::string token;  // read from token_file; never logged
  std::string state_dir = "/var/lib/tether";
  std::string ca_file;
  bool insecure = false;  // allow plain http/ws to a non-loopback hub
  uint64_t max_concurrent_tasks = 4;
  uint64_t flush_interval_ms = 2;
  uint64_t flush_interval_busy_ms = 25;  // while the agent reads over 5,000 times a second
  uint64_t chunk_bytes = 64 * 1024;
  uint64_t outbox_max_bytes = 256ull << 20;
  uint64_t outbox_min_free_bytes = 16ull << 20;
  OutboxFullPolicy outbox_full_policy = OutboxFullPolicy::kDropOldest;
  bool outbox_sync_full = false;
  uint64_t poll_wait_s = 30;
  uint64_t shutdown_grace_s = 30;
  uint64_t send_window_bytes = 8ull << 20;
  uint64_t keepalive_s = 15;  // ping an idle channel; dead after 3 silent intervals
  uint64_t kill_grace_s = 10;
  // Task isolation (docs/operations.md, Task isolation; task_users.hpp).
  std::string run_as = "tether-task";
  uint32_t task_uid_first = 0;  // task_uid_range; 0: off
  uint32_t task_uid_last = 0;
  bool cgroup = true;          // cgroup = auto (true) or off
  std::string task_home_root;  // empty: state_dir/homes
  std::string metrics_listen;  // empty: no metrics endpoint
  protocol::Labels labels;     // reported in the hello (docs/protocol.md 4.1)
  core::LogLevel log_level = core::LogLevel::kInfo;
  std::string config_file;  // where the settings came from, if a file
  // Where each key that is not at its default came from: "FILE:LINE",
  // "--flag" or "environment NAME". Logged at start (docs/agent.md).
  std::map<std::string, std::string> origins;
  // Variables of other programs that were set and ignored (a warning).
  std::vector<std::string> ignored_variables;

  // "where KEY came from", e.g. "token_file (from environment
  // TETHER_AGENT_TOKEN_FILE)"; "(default)" if nowhere.
  std::string origin_of(const std::string& key) const;
};

// The agent's own variable for the token file.
inline constexpr const char* kTokenFileVariable = "TETHER_AGENT_TOKEN_FILE";

// `args` are the words after "run". Reads --config FILE if given, the
// environment, and the token file; fails unless hub_url, agent and a token
// are set (error code "not_configured" when one is missing).
Result<AgentConfig> load_agent_config(const std::vector<std::string>& args);

// The settings alone, as the file, the environment and the flags give
// them: nothing required, the token not read (for `tether-agent status`).
Result<AgentConfig> read_agent_settings(const std::vector<std::string>& args);

// For tests: parse a config text as if read from `path`.
Result<void> apply_config_text(AgentConfig& config, const std::string& text,
                               const std::string& path);

// The keys, with their meaning, for --help.
std::string config_help();

}  // namespace tether::agent
