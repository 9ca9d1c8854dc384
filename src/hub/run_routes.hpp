// RunRoutes: the fan-out run routes of the operator API (docs/protocol.md
// 11.5), admitted by OperatorGate for their role:
//
//   POST /api/v1/runs               submit (role: submit)
//   GET  /api/v1/runs[?limit=N]     list, newest first
//   GET  /api/v1/runs/{id}          one run with each agent's task
//   POST /api/v1/runs/{id}/cancel   cancel (role: cancel)
//   GET  /api/v1/runs/{id}/events   SSE of its tasks' events and its own
//
// An operator limited to agent patterns may only run on agents it may
// reach: a run that would include another is refused (403), naming it.
#pragma once

#include <memory>
#include <string>

#include "hub/event_streams.hpp"
#include "hub/hub_parts.hpp"
#include "hub/operator_gate.hpp"

namespace tether::hub {

class RunRoutes {
 public:
  RunRoutes(const HubParts& parts, EventStreams& streams)
      : store_(parts.store),
        records_(parts.run_records),
        runs_(parts.runs),
        audit_(parts.audit),
        streams_(streams) {}

  using Exchange = std::shared_ptr<core::HttpExchange>;
  void submit(const Exchange& exchange, const Caller& caller);
  void list(const Exchange& exchange);
  void show(const Exchange& exchange, const std::string& run_id);
  void cancel(const Exchange& exchange, const Caller& caller, const std::string& run_id);
  void events(const Exchange& exchange, const Caller& caller, const std::string& run_id);

 private:
  core::SqlStore& store_;
  RunRepository& records_;
  RunCoordinator& runs_;
  AuditLog& audit_;
  EventStreams& streams_;
};

}  // namespace tether::hub
