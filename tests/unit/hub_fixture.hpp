// The hub's parts as Hub wires them (HubWiring: TaskRepository, EventLog,
// EventHub, OutputLedger, TaskTransitions, DispatchService, LeaseKeeper,
// AgentFrameService, AgentDirectory, RunCoordinator) on a real hub.db, for
// unit tests of what they decide together. Each "turn" is committed by hand (the store
// has no loop here), as the hub's group commit would.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "hub/hub_store.hpp"
#include "hub_wiring.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/sha256.hpp"
#include "support.hpp"

namespace tether::test {

// hub.db in a temporary directory, made before the parts that use it.
struct SqliteHubStore {
  TempDir dir{"tether-frames"};
  std::unique_ptr<core::SqliteStore> store = open_test_hub_store(dir.path);
};

// The hub's parts, wired as Hub wires them, on a hub.db in a temporary directory.
struct HubFixture : SqliteHubStore, HubWiring {
  HubFixture() : HubWiring(*store) {
    agents.add("edge-1", protocol::sha256_hex("token-1"));
    agents.add("edge-2", protocol::sha256_hex("token-2"));
    commit();
  }

  // The end of a loop turn: the turn's transaction commits, after-commit
  // actions (publishing to viewers) run.
  void commit() {
    auto committed = store->commit();
    REQUIRE(committed.ok());
  }

  // Submits a task for `agent` and dispatches it: its first attempt's spec.
  protocol::TaskSpec submit_and_dispatch(const std::string& agent = "edge-1") {
    protocol::SubmitRequest request;
    request.agent = agent;
    request.spec.argv = {"sh", "-c", "echo hello"};
    auto task = dispatch.submit(request);
    REQUIRE(task.ok());
    commit();
    auto spec = dispatch.dispatch_next(agent, "instance-1");
    REQUIRE(spec.has_value());
    commit();
    return *spec;
  }

  std::string task_state(const std::string& task_id) {
    auto task = tasks.find_task(task_id);
    REQUIRE(task.has_value());
    return std::string(hub::to_string(task->state));
  }

  std::string attempt_state(const std::string& attempt_id) {
    auto attempt = tasks.find_attempt(attempt_id);
    REQUIRE(attempt.has_value());
    return std::string(hub::to_string(attempt->state));
  }

  size_t stored_chunks(const std::string& attempt_id, protocol::StreamName stream) {
    return events.stream_page(attempt_id, stream, 0, 1000).size();
  }
};

}  // namespace tether::test
