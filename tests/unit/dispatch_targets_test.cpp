// The hub's queue with hierarchical targets (docs/protocol.md 3), on a real
// hub.db: which queued task DispatchService::dispatch_next hands out while
// others hold conflicting targets, what on_conflict reject refuses, and the
// wake when a target is freed.
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hub_fixture.hpp"
#include "protocol/frames.hpp"

using namespace tether;
using test::HubFixture;

namespace {

// The hub with a task submitted, dispatched, started and finished by hand.
struct Queue {
  HubFixture hub;

  // Submits a task for edge-1 with `target` (empty: none); the result of
  // DispatchService::submit, committed.
  Result<hub::TaskRecord> submit(const std::string& target, bool reject = false) {
    protocol::SubmitRequest request;
    request.agent = "edge-1";
    request.spec.argv = {"true"};
    request.spec.target = target;
    request.reject_on_conflict = reject;
    auto task = hub.dispatch.submit(request);
    hub.commit();
    return task;
  }
  std::string queued(const std::string& target) {
    auto task = submit(target);
    REQUIRE(task.ok());
    return task->id;
  }

  // edge-1's next task's id, started (running); empty if none is dispatched.
  std::string next() {
    auto spec = hub.dispatch.dispatch_next("edge-1", "instance-1");
    hub.commit();
    if (!spec) return {};
    protocol::TaskStarted started{{spec->task_id, spec->attempt_id},
                                  {4242, "2026-11-22T00:00:00.000Z"}};
    auto verdict =
        hub.frames.on_started("edge-1", started, protocol::started_message_id(spec->attempt_id));
    REQUIRE_FALSE(verdict.error.has_value());
    hub.commit();
    REQUIRE(hub.task_state(spec->task_id) == "running");
    return spec->task_id;
  }

  // The running task `task_id` succeeds (no output).
  void finish(const std::string& task_id) {
    const std::string attempt_id = task_id + "-a1";
    protocol::TaskFinal final_frame;
    final_frame.attempt = {task_id, attempt_id};
    final_frame.report.status = protocol::AttemptStatus::kSucceeded;
    final_frame.report.exit_code = 0;
    final_frame.report.started_at = "2026-11-22T00:00:00.000Z";
    final_frame.report.finished_at = "2026-11-22T00:00:01.000Z";
    final_frame.report.stdout_summary.sha256 = protocol::sha256_hex("");
    final_frame.report.stderr_summary.sha256 = protocol::sha256_hex("");
    auto verdict =
        hub.frames.on_final("edge-1", final_frame, protocol::final_message_id(attempt_id));
    REQUIRE_FALSE(verdict.error.has_value());
    hub.commit();
    REQUIRE(hub.task_state(task_id) == "succeeded");
  }
};

}  // namespace

TEST_CASE("dispatch: a sibling target goes while another runs; an ancestor waits for the child",
          "[dispatch][targets]") {
  Queue queue;
  const std::string db = queue.queued("app/db");
  CHECK(queue.next() == db);
  const std::string web = queue.queued("app/web");
  CHECK(queue.next() == web);  // app/web and app/db do not conflict
  const std::string app = queue.queued("app");
  const std::string application = queue.queued("application");
  CHECK(queue.next() == application);  // not below "app": free
  CHECK(queue.next().empty());         // "app" conflicts with both running
  queue.finish(web);
  CHECK(queue.next().empty());  // app/db still runs
  CHECK(queue.hub.task_state(app) == "queued");
  queue.finish(db);
  CHECK(queue.next() == app);
  const std::string web_x = queue.queued("app/web/x");
  CHECK(queue.next().empty());  // below the running "app"
  queue.finish(app);
  CHECK(queue.next() == web_x);
}

TEST_CASE("dispatch: free tasks go in queue order; conflicting ones in the order submitted",
          "[dispatch][targets]") {
  Queue queue;
  const std::string db = queue.queued("app/db");
  CHECK(queue.next() == db);
  const std::string app = queue.queued("app");          // waits for app/db
  const std::string plain = queue.queued("");           // no target
  const std::string web = queue.queued("app/web");      // waits behind the older "app"
  const std::string other = queue.queued("other/1");    // free
  const std::string web_too = queue.queued("app/web");  // behind both
  const std::string other_2 = queue.queued("other/2");  // free
  CHECK(queue.next() == plain);
  CHECK(queue.next() == other);
  CHECK(queue.next() == other_2);
  CHECK(queue.next().empty());
  CHECK(queue.hub.task_state(web) == "queued");
  queue.finish(db);
  CHECK(queue.next() == app);
  CHECK(queue.next().empty());
  queue.finish(app);
  CHECK(queue.next() == web);
  CHECK(queue.next().empty());  // the same target as the running one
  queue.finish(web);
  CHECK(queue.next() == web_too);
}

TEST_CASE(
    "on_conflict reject: refused while a queued, dispatched or running task holds a "
    "conflicting target, naming the oldest",
    "[dispatch][targets]") {
  Queue queue;
  const std::string web = queue.queued("app/web");
  CHECK(queue.next() == web);
  const std::string db = queue.queued("app/db");  // queued, not dispatched
  for (const char* target : {"app", "app/web", "app/web/x"}) {
    auto refused = queue.submit(target, true);
    INFO(target);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "target_busy");
    CHECK(refused.error().message == web);  // the oldest holder
  }
  auto below_queued = queue.submit("app/db/x", true);
  REQUIRE_FALSE(below_queued.ok());
  CHECK(below_queued.error().message == db);
  for (const char* target : {"application", "app/dbx", "web", ""}) {
    INFO(target);
    CHECK(queue.submit(target, true).ok());
  }
}

TEST_CASE("a task with a target that ends wakes its agent's poll after commit",
          "[dispatch][targets]") {
  Queue queue;
  std::vector<std::string> wakes;
  hub::AgentNotifier notifier;
  notifier.task_queued = [&](const std::string& agent) { wakes.push_back(agent); };
  queue.hub.transitions.set_notifier(notifier);
  const std::string web = queue.queued("app/web");
  const std::string plain = queue.queued("");
  CHECK(wakes.size() == 2);  // each submission
  CHECK(queue.next() == web);
  CHECK(queue.next() == plain);
  queue.finish(plain);
  CHECK(wakes.size() == 2);  // no target freed
  queue.finish(web);
  REQUIRE(wakes.size() == 3);
  CHECK(wakes.back() == "edge-1");
}
