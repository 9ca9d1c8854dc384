// HubParts: references to the parts of one hub, as Hub assembles them, for
// the entry points (HTTP routes) that use several. Every part is owned by Hub.
#pragma once

#include "core/loop.hpp"
#include "hub/agent_channels.hpp"
#include "hub/agent_directory.hpp"
#include "hub/agent_frame_service.hpp"
#include "hub/audit_log.hpp"
#include "hub/auth_throttle.hpp"
#include "hub/dispatch_service.hpp"
#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "hub/hub_store.hpp"
#include "hub/lease_keeper.hpp"
#include "hub/poll_waiters.hpp"
#include "hub/run_coordinator.hpp"
#include "hub/run_repository.hpp"
#include "hub/task_repository.hpp"
#include "hub/tokens.hpp"

namespace tether::hub {

struct HubParts {
  core::Loop& loop;
  core::SqlStore& store;
  TokenStore& tokens;
  AgentDirectory& agents;
  TaskRepository& tasks;
  EventLog& events;
  EventHub& viewers;
  DispatchService& dispatch;
  AgentFrameService& frames;
  LeaseKeeper& leases;
  AgentChannels& channels;
  PollWaiters& polls;
  AuthThrottle& throttle;
  AuditLog& audit;
  RunRepository& run_records;
  RunCoordinator& runs;
};

}  // namespace tether::hub
