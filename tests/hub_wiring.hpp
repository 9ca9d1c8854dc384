// HubWiring: the storage-level parts of one hub, wired as Hub wires them
// (src/hub/hub.cpp), over any core::SqlStore: hub.db in the unit tests
// (tests/unit/hub_fixture.hpp), PostgreSQL in the several-hub tests
// (tests/integration/hub_peers_test.cpp). No loop and no server: a test
// commits each "turn" by hand, as the hub's group commit would.
#pragma once

#include <array>

#include "core/sql_store.hpp"
#include "hub/agent_directory.hpp"
#include "hub/agent_frame_service.hpp"
#include "hub/dispatch_service.hpp"
#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "hub/lease_keeper.hpp"
#include "hub/output_ledger.hpp"
#include "hub/run_coordinator.hpp"
#include "hub/run_repository.hpp"
#include "hub/secret_vault.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_secrets.hpp"
#include "hub/task_transitions.hpp"

namespace tether::test {

struct HubWiring {
  // `store` must outlive the wiring. Leases of 60 s on the wall clock.
  explicit HubWiring(core::SqlStore& store)
      : agents(store),
        tasks(store),
        secrets(store, vault),
        events(store),
        transitions(store, tasks, secrets, events, viewers, ledger),
        run_records(store) {
    // As Hub wires it: a run decides when one of its tasks ends.
    transitions.set_on_run_task_ended(
        [this](const std::string& run_id) { runs.task_ended(run_id); });
  }
  HubWiring(const HubWiring&) = delete;
  HubWiring& operator=(const HubWiring&) = delete;

  hub::AgentDirectory agents;
  hub::TaskRepository tasks;
  hub::SecretVault vault{std::array<unsigned char, hub::SecretVault::kKeyBytes>{}};
  hub::TaskSecrets secrets;
  hub::EventLog events;
  hub::EventHub viewers;
  hub::OutputLedger ledger{events};
  hub::TaskTransitions transitions;
  hub::DispatchService dispatch{tasks, agents, secrets, transitions};
  hub::LeaseKeeper leases{tasks, transitions, agents, 60'000};
  hub::AgentFrameService frames{tasks, events, ledger, transitions, agents, leases};
  hub::RunRepository run_records;
  hub::RunCoordinator runs{run_records, tasks, agents, dispatch, transitions};
};

}  // namespace tether::test
