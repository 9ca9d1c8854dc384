// AgentStatus: what a running agent says about itself, taken as one
// snapshot and rendered two ways: JSON for `tether-agent status` (over the
// status socket) and Prometheus text for metrics_listen. Neither carries
// the token or anything read from the token file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tether::agent {

struct RunningAttempt {
  std::string task_id;
  std::string attempt_id;
  int pid = 0;
  std::string started_at;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
};

struct AgentStatus {
  std::string version;
  std::string agent;
  std::string hub;  // origin only
  int pid = 0;
  std::string started_at;
  uint64_t uptime_s = 0;
  bool stopping = false;

  // The result channel.
  bool channel_connected = false;
  std::string channel_since;  // when it last came up or went down
  std::string channel_last_error;
  uint64_t channel_sessions = 0;  // reconnects: sessions after the first
  uint64_t channel_connect_failures = 0;
  uint64_t frames_sent = 0;
  uint64_t frame_bytes_sent = 0;
  uint64_t batches_sent = 0;
  uint64_t acks_received = 0;

  // The poller.
  std::string last_poll_ok;  // empty: none yet
  std::string last_poll_error;
  uint64_t poll_failures = 0;
  uint64_t tasks_received = 0;

  // Tasks.
  uint64_t max_concurrent_tasks = 0;
  std::vector<RunningAttempt> running;

  // The outbox, as the agent holds it.
  uint64_t outbox_rows = 0;
  uint64_t outbox_bytes = 0;
  uint64_t outbox_max_bytes = 0;
  std::string outbox_oldest_created_at;  // empty when empty
  int64_t outbox_oldest_age_ms = 0;
  uint64_t dropped_bytes = 0;  // since start (drop-oldest)

  uint64_t reconnects() const { return channel_sessions > 0 ? channel_sessions - 1 : 0; }
};

std::string status_json(const AgentStatus& status);
std::string status_metrics(const AgentStatus& status);

}  // namespace tether::agent
