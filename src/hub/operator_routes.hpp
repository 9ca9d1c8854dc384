// OperatorRoutes: the operator API (docs/protocol.md 11), for requests that
// HubApi has already routed and authenticated with an admin token.
//
//   POST /api/v1/tasks            GET /api/v1/tasks[?state=&limit=]
//   GET  /api/v1/tasks/{id}       GET /api/v1/tasks/{id}/output
//   GET  /api/v1/tasks/{id}/events (SSE)
//   POST /api/v1/tasks/{id}/cancel
//   GET  /api/v1/agents           DELETE /api/v1/agents/{name}
//
// Answers that depend on stored changes go out after the turn has committed.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>

#include "hub/hub_parts.hpp"
#include "hub/sse_stream.hpp"

namespace tether::hub {

class OperatorRoutes {
 public:
  OperatorRoutes(const HubParts& parts, size_t max_event_streams);

  void submit(const std::shared_ptr<core::HttpExchange>& exchange);
  void list_tasks(const std::shared_ptr<core::HttpExchange>& exchange);
  void show_task(const std::shared_ptr<core::HttpExchange>& exchange, const std::string& task_id);
  void task_output(const std::shared_ptr<core::HttpExchange>& exchange, const std::string& task_id);
  void task_events(const std::shared_ptr<core::HttpExchange>& exchange, const std::string& task_id);
  void cancel(const std::shared_ptr<core::HttpExchange>& exchange, const std::string& task_id);
  void list_agents(const std::shared_ptr<core::HttpExchange>& exchange);
  void remove_agent(const std::shared_ptr<core::HttpExchange>& exchange, const std::string& name);

  // Ends every SSE stream (shutdown).
  void close_streams();
  size_t open_streams() const { return streams_.size(); }

 private:
  core::Loop& loop_;
  core::SqliteStore& store_;
  AgentDirectory& agents_;
  TaskRepository& tasks_;
  EventLog& events_;
  EventHub& viewers_;
  DispatchService& dispatch_;
  LeaseKeeper& leases_;
  AgentChannels& channels_;
  size_t max_event_streams_;
  std::unordered_set<std::shared_ptr<SseStream>> streams_;
};

}  // namespace tether::hub
