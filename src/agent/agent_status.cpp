#include "agent/agent_status.hpp"

#include "core/metrics_server.hpp"
#include "protocol/json_writer.hpp"

namespace tether::agent {

std::string status_json(const AgentStatus& status) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("version", status.version);
  json.field("agent", status.agent);
  json.field("hub", status.hub);
  json.field("pid", status.pid);
  json.field("started_at", status.started_at);
  json.field("uptime_s", status.uptime_s);
  json.field("stopping", status.stopping);

  json.key("channel");
  json.begin_object();
  json.field("state", status.channel_connected ? "connected" : "disconnected");
  json.field("since", status.channel_since);
  json.field("last_error", status.channel_last_error);
  json.field("reconnects", status.reconnects());
  json.field("connect_failures", status.channel_connect_failures);
  json.field("frames_sent", status.frames_sent);
  json.field("bytes_sent", status.frame_bytes_sent);
  json.field("batches_sent", status.batches_sent);
  json.field("acks_received", status.acks_received);
  json.end_object();

  json.key("poller");
  json.begin_object();
  json.field("last_success", status.last_poll_ok);
  json.field("last_error", status.last_poll_error);
  json.field("failures", status.poll_failures);
  json.field("tasks_received", status.tasks_received);
  json.end_object();

  json.field("max_concurrent_tasks", status.max_concurrent_tasks);
  json.key("running");
  json.begin_array();
  for (const auto& attempt : status.running) {
    json.begin_object();
    json.field("task_id", attempt.task_id);
    json.field("attempt_id", attempt.attempt_id);
    json.field("pid", attempt.pid);
    json.field("started_at", attempt.started_at);
    json.field("stdout_bytes", attempt.stdout_bytes);
    json.field("stderr_bytes", attempt.stderr_bytes);
    json.end_object();
  }
  json.end_array();

  json.key("outbox");
  json.begin_object();
  json.field("rows", status.outbox_rows);
  json.field("bytes", status.outbox_bytes);
  json.field("max_bytes", status.outbox_max_bytes);
  json.field("oldest_created_at", status.outbox_oldest_created_at);
  json.field("oldest_age_ms", status.outbox_oldest_age_ms);
  json.field("dropped_bytes_since_start", status.dropped_bytes);
  json.end_object();
  json.end_object();
  return json.str();
}

std::string status_metrics(const AgentStatus& status) {
  core::MetricsText text;
  const std::string agent = core::MetricsText::label("agent", status.agent);
  text.metric("tether_agent_info", "gauge", "The agent's version and name; always 1.", 1,
              core::MetricsText::label("version", status.version) + "," + agent);
  text.metric("tether_agent_uptime_seconds", "gauge", "Seconds since the agent started.",
              static_cast<double>(status.uptime_s));
  text.metric("tether_agent_channel_connected", "gauge",
              "1 while the WebSocket result channel to the hub is up.",
              status.channel_connected ? 1 : 0);
  text.metric("tether_agent_channel_reconnects_total", "counter",
              "Result channel sessions after the first.", static_cast<double>(status.reconnects()));
  text.metric("tether_agent_channel_connect_failures_total", "counter",
              "Failed attempts to open the result channel.",
              static_cast<double>(status.channel_connect_failures));
  text.metric("tether_agent_frames_sent_total", "counter",
              "Frames written to the result channel, resends included.",
              static_cast<double>(status.frames_sent));
  text.metric("tether_agent_frame_bytes_sent_total", "counter",
              "Bytes of frame JSON written to the result channel.",
              static_cast<double>(status.frame_bytes_sent));
  text.metric("tether_agent_batches_sent_total", "counter",
              "Messages that carried several frames (a batch, docs/protocol.md 4.4).",
              static_cast<double>(status.batches_sent));
  text.metric("tether_agent_acks_received_total", "counter", "Acks received from the hub.",
              static_cast<double>(status.acks_received));
  text.metric("tether_agent_poll_failures_total", "counter",
              "Task polls that failed (network, HTTP error, refused token).",
              static_cast<double>(status.poll_failures));
  text.metric("tether_agent_tasks_received_total", "counter", "Tasks received from the hub.",
              static_cast<double>(status.tasks_received));
  text.metric("tether_agent_tasks_running", "gauge", "Attempts running now.",
              static_cast<double>(status.running.size()));
  text.metric("tether_agent_tasks_max", "gauge", "max_concurrent_tasks.",
              static_cast<double>(status.max_concurrent_tasks));
  text.metric("tether_agent_outbox_frames", "gauge", "Frames in the outbox, not yet acked.",
              static_cast<double>(status.outbox_rows));
  text.metric("tether_agent_outbox_bytes", "gauge",
              "Bytes of frame JSON in the outbox (what outbox_max_bytes caps).",
              static_cast<double>(status.outbox_bytes));
  text.metric("tether_agent_outbox_max_bytes", "gauge", "outbox_max_bytes.",
              static_cast<double>(status.outbox_max_bytes));
  text.metric("tether_agent_outbox_oldest_age_seconds", "gauge",
              "Age of the oldest frame in the outbox; 0 when empty.",
              static_cast<double>(status.outbox_oldest_age_ms) / 1000.0);
  text.metric("tether_agent_dropped_bytes_total", "counter",
              "Output bytes dropped because the outbox was full (drop-oldest), since start.",
              static_cast<double>(status.dropped_bytes));
  return text.str();
}

}  // namespace tether::agent
