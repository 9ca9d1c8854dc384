// OperatorRoutes: the operator API (docs/protocol.md 11), for requests that
// HubApi has already routed and OperatorGate has admitted (role, and agent
// patterns for routes about one agent or task).
//
//   POST /api/v1/tasks            GET /api/v1/tasks[?state=&limit=]
//   GET  /api/v1/tasks/{id}       GET /api/v1/tasks/{id}/output
//   GET  /api/v1/tasks/{id}/events (SSE)
//   POST /api/v1/tasks/{id}/cancel
//   GET  /api/v1/agents           DELETE /api/v1/agents/{name}
//   GET  /api/v1/audit[?actor=&action=&target=&since=&until=&after=&limit=]
//
// Listings show only the agents, and tasks of agents, the caller may reach;
// task views for a viewer carry env names without values. Submits, cancels
// and removals are recorded in the audit trail, in the turn that makes them.
// Answers that depend on stored changes go out after the turn has committed.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>

#include "hub/event_streams.hpp"
#include "hub/hub_parts.hpp"
#include "hub/operator_gate.hpp"
#include "hub/run_routes.hpp"

namespace tether::hub {

class OperatorRoutes {
 public:
  OperatorRoutes(const HubParts& parts, size_t max_event_streams);

  using Exchange = std::shared_ptr<core::HttpExchange>;
  void submit(const Exchange& exchange, const Caller& caller);
  void list_tasks(const Exchange& exchange, const Caller& caller);
  void show_task(const Exchange& exchange, const Caller& caller, const std::string& task_id);
  void task_output(const Exchange& exchange, const std::string& task_id);
  void task_events(const Exchange& exchange, const Caller& caller, const std::string& task_id);
  void cancel(const Exchange& exchange, const Caller& caller, const std::string& task_id);
  void list_agents(const Exchange& exchange, const Caller& caller);
  void remove_agent(const Exchange& exchange, const Caller& caller, const std::string& name);
  void read_audit(const Exchange& exchange);

  // Ends every SSE stream (shutdown).
  void close_streams() { streams_.close_all(); }
  size_t open_streams() const { return streams_.size(); }
  // The SSE streams, shared with RunRoutes (one bound for both).
  EventStreams& event_streams() { return streams_; }
  RunRoutes& runs() { return runs_; }

 private:
  core::SqlStore& store_;
  AgentDirectory& agents_;
  TaskRepository& tasks_;
  EventLog& events_;
  DispatchService& dispatch_;
  LeaseKeeper& leases_;
  AgentChannels& channels_;
  AuditLog& audit_;
  EventStreams streams_;
  RunRoutes runs_;
};

}  // namespace tether::hub
