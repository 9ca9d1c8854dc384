// hub::AgentFrameService on a real hub.db, with the parts Hub assembles
// around it (TaskRepository, EventLog, EventHub, OutputLedger,
// TaskTransitions, DispatchService, LeaseKeeper, AgentDirectory): submit,
// dispatch, task.started, task.output and task.final as docs/protocol.md
// sections 4 to 6 and 10 describe them. Each "turn" is committed by hand
// (the store has no loop here), as the hub's group commit would.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "hub/agent_directory.hpp"
#include "hub/agent_frame_service.hpp"
#include "hub/dispatch_service.hpp"
#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "hub/hub_store.hpp"
#include "hub/lease_keeper.hpp"
#include "hub/output_ledger.hpp"
#include "hub/secret_vault.hpp"
#include "hub/task_repository.hpp"
#include "hub/task_secrets.hpp"
#include "hub/task_transitions.hpp"
#include "hub_fixture.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/frames.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/sha256.hpp"
#include "support.hpp"

using namespace tether;
using protocol::AckedKind;
using protocol::StreamName;
using test::HubFixture;

namespace {

protocol::AttemptRef ref_of(const protocol::TaskSpec& spec) {
  return {spec.task_id, spec.attempt_id};
}

protocol::TaskStarted started_frame(const protocol::TaskSpec& spec, int pid = 4242) {
  protocol::TaskStarted started;
  started.attempt = ref_of(spec);
  started.report.pid = pid;
  started.report.started_at = "2026-11-22T00:00:00.000Z";
  return started;
}

protocol::TaskOutput output_frame(const protocol::TaskSpec& spec, StreamName stream, uint64_t seq,
                                  uint64_t offset, std::string data) {
  protocol::TaskOutput output;
  output.attempt = ref_of(spec);
  output.chunk.stream = stream;
  output.chunk.seq = seq;
  output.chunk.offset = offset;
  output.chunk.data = std::move(data);
  return output;
}

std::string output_id(const protocol::TaskSpec& spec, StreamName stream, uint64_t seq) {
  return protocol::output_message_id(spec.attempt_id, stream, seq);
}

protocol::TaskFinal final_frame(const protocol::TaskSpec& spec, const std::string& out,
                                const std::string& err, int exit_code = 0) {
  protocol::TaskFinal final_frame;
  final_frame.attempt = ref_of(spec);
  auto& report = final_frame.report;
  report.status =
      exit_code == 0 ? protocol::AttemptStatus::kSucceeded : protocol::AttemptStatus::kFailed;
  report.exit_code = exit_code;
  report.started_at = "2026-11-22T00:00:00.000Z";
  report.finished_at = "2026-11-22T00:00:01.000Z";
  report.stdout_summary.bytes = out.size();
  report.stdout_summary.sha256 = protocol::sha256_hex(out);
  report.stderr_summary.bytes = err.size();
  report.stderr_summary.sha256 = protocol::sha256_hex(err);
  return final_frame;
}

std::string code_of(const std::optional<protocol::ErrorFrame>& error) {
  return error ? error->code : std::string("(no error)");
}

}  // namespace

TEST_CASE("AgentFrameService: submit, dispatch, started, output, final: the task succeeds verified",
          "[agent_frame_service]") {
  HubFixture hub;
  protocol::SubmitRequest request;
  request.agent = "edge-1";
  request.spec.argv = {"sh", "-c", "echo hello"};
  request.spec.env = {{"A", "1"}};
  auto submitted = hub.dispatch.submit(request);
  REQUIRE(submitted.ok());
  const std::string task_id = submitted->id;
  CHECK(task_id.rfind("t-", 0) == 0);

  // Live viewers see each event only once its turn has committed.
  std::vector<std::string> seen;
  hub.viewers.subscribe(task_id, [&](const std::shared_ptr<const hub::StoredEvent>& event) {
    seen.push_back(std::string(hub::to_string(event->kind)) +
                   (event->state.empty() ? "" : ":" + event->state));
  });
  CHECK(seen.empty());
  hub.commit();
  CHECK(hub.task_state(task_id) == "queued");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == "status:queued");

  // Another agent's poll gets nothing; this agent's gets the task.
  auto nothing = hub.dispatch.dispatch_next("edge-2", "");
  CHECK_FALSE(nothing.has_value());
  auto spec = hub.dispatch.dispatch_next("edge-1", "instance-1");
  REQUIRE(spec.has_value());
  hub.commit();
  CHECK(spec->task_id == task_id);
  CHECK(spec->attempt_id == task_id + "-a1");
  REQUIRE(spec->argv.size() == 3);
  CHECK(spec->argv[2] == "echo hello");
  CHECK(spec->env.at("A") == "1");
  CHECK(hub.task_state(task_id) == "dispatched");
  CHECK(hub.attempt_state(spec->attempt_id) == "dispatched");
  auto again = hub.dispatch.dispatch_next("edge-1", "instance-1");
  CHECK_FALSE(again.has_value());  // nothing else queued

  // task.started: acked (that one frame), and the task runs.
  const std::string started_id = protocol::started_message_id(spec->attempt_id);
  auto started = hub.frames.on_started("edge-1", started_frame(*spec), started_id);
  CHECK_FALSE(started.error.has_value());
  REQUIRE(started.ack.has_value());
  CHECK(started.ack->acked == AckedKind::kStarted);
  CHECK(started.ack->attempt_id == spec->attempt_id);
  CHECK(started.ack->related_message_id == started_id);
  hub.commit();
  CHECK(hub.task_state(task_id) == "running");
  CHECK(hub.attempt_state(spec->attempt_id) == "running");
  auto attempt = hub.tasks.find_attempt(spec->attempt_id);
  REQUIRE(attempt.has_value());
  CHECK(attempt->pid == 4242);
  CHECK(attempt->started_at == "2026-11-22T00:00:00.000Z");
  CHECK(attempt->agent_instance == "instance-1");

  // The same task.started again is acked again; the state stays.
  auto started_again = hub.frames.on_started("edge-1", started_frame(*spec), started_id);
  CHECK_FALSE(started_again.error.has_value());
  CHECK(started_again.ack.has_value());
  hub.commit();
  CHECK(hub.task_state(task_id) == "running");

  // Output in order, both streams: each acked through its own seq.
  const std::string out1 = "hello\n", out2 = "world\n", err1 = "warning\n";
  auto first = hub.frames.on_output("edge-1", output_frame(*spec, StreamName::kStdout, 1, 0, out1),
                                    output_id(*spec, StreamName::kStdout, 1));
  CHECK_FALSE(first.error.has_value());
  REQUIRE(first.ack.has_value());
  CHECK(first.ack->acked == AckedKind::kOutput);
  CHECK(first.ack->attempt_id == spec->attempt_id);
  CHECK(first.ack->stream == StreamName::kStdout);
  CHECK(first.ack->through_seq == 1);
  auto second = hub.frames.on_output("edge-1", output_frame(*spec, StreamName::kStdout, 2, 6, out2),
                                     output_id(*spec, StreamName::kStdout, 2));
  REQUIRE(second.ack.has_value());
  CHECK(second.ack->through_seq == 2);
  auto err = hub.frames.on_output("edge-1", output_frame(*spec, StreamName::kStderr, 1, 0, err1),
                                  output_id(*spec, StreamName::kStderr, 1));
  REQUIRE(err.ack.has_value());
  CHECK(err.ack->stream == StreamName::kStderr);
  CHECK(err.ack->through_seq == 1);
  const size_t before_commit = seen.size();
  hub.commit();
  CHECK(seen.size() == before_commit + 3);  // three output events, published after commit
  CHECK(hub.stored_chunks(spec->attempt_id, StreamName::kStdout) == 2);
  CHECK(hub.stored_chunks(spec->attempt_id, StreamName::kStderr) == 1);

  // task.final with every byte and the right digests: verified, succeeded.
  const std::string final_id = protocol::final_message_id(spec->attempt_id);
  auto final_verdict =
      hub.frames.on_final("edge-1", final_frame(*spec, out1 + out2, err1), final_id);
  CHECK(code_of(final_verdict.error) == "(no error)");
  CHECK(final_verdict.missing.empty());
  CHECK(final_verdict.verified);
  hub.commit();
  CHECK(hub.task_state(task_id) == "succeeded");
  CHECK(hub.attempt_state(spec->attempt_id) == "finished");
  auto task = hub.tasks.find_task(task_id);
  REQUIRE(task.has_value());
  REQUIRE(task->output_verified.has_value());
  CHECK(*task->output_verified);
  CHECK(task->verification_error.empty());
  CHECK_FALSE(task->final_json.empty());
  attempt = hub.tasks.find_attempt(spec->attempt_id);
  REQUIRE(attempt.has_value());
  CHECK(attempt->final_fingerprint ==
        protocol::final_fingerprint(final_frame(*spec, out1 + out2, err1).report));

  const std::vector<std::string> expected = {
      "status:queued", "status:dispatched", "status:running", "output", "output", "output",
      "final",         "status:succeeded"};
  CHECK(seen == expected);
}

TEST_CASE("AgentFrameService: duplicates are acked again, never stored twice",
          "[agent_frame_service]") {
  HubFixture hub;
  const auto spec = hub.submit_and_dispatch();
  REQUIRE(hub.frames.on_started("edge-1", started_frame(spec), "s").ack.has_value());
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    auto verdict = hub.frames.on_output(
        "edge-1", output_frame(spec, StreamName::kStdout, seq, (seq - 1) * 4, "abc\n"),
        output_id(spec, StreamName::kStdout, seq));
    REQUIRE(verdict.ack.has_value());
    CHECK(verdict.ack->through_seq == seq);
  }
  hub.commit();
  REQUIRE(hub.stored_chunks(spec.attempt_id, StreamName::kStdout) == 3);

  // An old frame resent (a reconnect replays from the outbox): acked through
  // the highest seq stored, cumulatively.
  auto duplicate =
      hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 1, 0, "abc\n"),
                           output_id(spec, StreamName::kStdout, 1));
  CHECK_FALSE(duplicate.error.has_value());
  REQUIRE(duplicate.ack.has_value());
  CHECK(duplicate.ack->acked == AckedKind::kOutput);
  CHECK(duplicate.ack->stream == StreamName::kStdout);
  CHECK(duplicate.ack->through_seq == 3);
  auto last_again =
      hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 3, 8, "abc\n"),
                           output_id(spec, StreamName::kStdout, 3));
  REQUIRE(last_again.ack.has_value());
  CHECK(last_again.ack->through_seq == 3);
  hub.commit();
  CHECK(hub.stored_chunks(spec.attempt_id, StreamName::kStdout) == 3);
  CHECK(hub.ledger.stream(spec.attempt_id, StreamName::kStdout).stored_bytes == 12);

  // The ledger rebuilt from storage (a hub restart) still sees a duplicate.
  hub.ledger.clear();
  auto after_restart =
      hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 2, 4, "abc\n"),
                           output_id(spec, StreamName::kStdout, 2));
  REQUIRE(after_restart.ack.has_value());
  CHECK(after_restart.ack->through_seq == 3);
  hub.commit();
  CHECK(hub.stored_chunks(spec.attempt_id, StreamName::kStdout) == 3);
}

TEST_CASE("AgentFrameService: a seq gap, a wrong offset and another agent's attempt are refused",
          "[agent_frame_service]") {
  HubFixture hub;
  const auto spec = hub.submit_and_dispatch();
  REQUIRE(hub.frames.on_started("edge-1", started_frame(spec), "s").ack.has_value());
  REQUIRE(hub.frames
              .on_output("edge-1", output_frame(spec, StreamName::kStdout, 1, 0, "12345"),
                         output_id(spec, StreamName::kStdout, 1))
              .ack.has_value());
  REQUIRE(hub.frames
              .on_output("edge-1", output_frame(spec, StreamName::kStdout, 2, 5, "678"),
                         output_id(spec, StreamName::kStdout, 2))
              .ack.has_value());
  hub.commit();

  SECTION("seq > H+1: output_sequence_gap, retryable, with H and B") {
    const std::string id = output_id(spec, StreamName::kStdout, 5);
    auto verdict =
        hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 5, 20, "x"), id);
    CHECK_FALSE(verdict.ack.has_value());
    REQUIRE(verdict.error.has_value());
    CHECK(verdict.error->code == "output_sequence_gap");
    CHECK(verdict.error->retryable);
    CHECK(verdict.error->related_message_id == id);
    CHECK(verdict.error->attempt_id == spec.attempt_id);
    REQUIRE(verdict.error->stream.has_value());
    CHECK(*verdict.error->stream == StreamName::kStdout);
    REQUIRE(verdict.error->highest_accepted_seq.has_value());
    CHECK(*verdict.error->highest_accepted_seq == 2);
    REQUIRE(verdict.error->next_offset.has_value());
    CHECK(*verdict.error->next_offset == 8);
    CHECK(verdict.error->message == "stdout of " + spec.attempt_id + ": expected seq 3, got 5");
    // The other stream has its own sequence: seq 2 first is a gap there too.
    auto stderr_gap =
        hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStderr, 2, 0, "e"),
                             output_id(spec, StreamName::kStderr, 2));
    REQUIRE(stderr_gap.error.has_value());
    CHECK(stderr_gap.error->code == "output_sequence_gap");
    REQUIRE(stderr_gap.error->highest_accepted_seq.has_value());
    CHECK(*stderr_gap.error->highest_accepted_seq == 0);
    REQUIRE(stderr_gap.error->stream.has_value());
    CHECK(*stderr_gap.error->stream == StreamName::kStderr);
  }

  SECTION("seq = H+1 at the wrong offset: output_offset_mismatch, not retryable") {
    auto verdict =
        hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 3, 7, "9"),
                             output_id(spec, StreamName::kStdout, 3));
    CHECK_FALSE(verdict.ack.has_value());
    REQUIRE(verdict.error.has_value());
    CHECK(verdict.error->code == "output_offset_mismatch");
    CHECK_FALSE(verdict.error->retryable);
    CHECK(verdict.error->attempt_id == spec.attempt_id);
    REQUIRE(verdict.error->highest_accepted_seq.has_value());
    CHECK(*verdict.error->highest_accepted_seq == 2);
    REQUIRE(verdict.error->next_offset.has_value());
    CHECK(*verdict.error->next_offset == 8);
  }

  SECTION("another agent's attempt, or none at all: unknown_attempt") {
    auto verdict =
        hub.frames.on_output("edge-2", output_frame(spec, StreamName::kStdout, 3, 8, "9"),
                             output_id(spec, StreamName::kStdout, 3));
    CHECK_FALSE(verdict.ack.has_value());
    REQUIRE(verdict.error.has_value());
    CHECK(verdict.error->code == "unknown_attempt");
    CHECK_FALSE(verdict.error->retryable);
    CHECK(verdict.error->attempt_id == spec.attempt_id);
    CHECK_FALSE(verdict.error->highest_accepted_seq.has_value());  // nothing leaks

    auto missing_spec = spec;
    missing_spec.attempt_id = spec.task_id + "-a9";
    auto none =
        hub.frames.on_output("edge-1", output_frame(missing_spec, StreamName::kStdout, 1, 0, "x"),
                             output_id(missing_spec, StreamName::kStdout, 1));
    REQUIRE(none.error.has_value());
    CHECK(none.error->code == "unknown_attempt");
    CHECK(none.error->attempt_id == missing_spec.attempt_id);

    auto started = hub.frames.on_started("edge-2", started_frame(spec), "s2");
    REQUIRE(started.error.has_value());
    CHECK(started.error->code == "unknown_attempt");
    auto final_verdict = hub.frames.on_final("edge-2", final_frame(spec, "12345678", ""), "f2");
    CHECK(code_of(final_verdict.error) == "unknown_attempt");
    CHECK_FALSE(final_verdict.verified);
  }

  // Nothing refused was stored, and the stream goes on from where it was.
  hub.commit();
  CHECK(hub.stored_chunks(spec.attempt_id, StreamName::kStdout) == 2);
  CHECK(hub.stored_chunks(spec.attempt_id, StreamName::kStderr) == 0);
  auto next = hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 3, 8, "9"),
                                   output_id(spec, StreamName::kStdout, 3));
  CHECK_FALSE(next.error.has_value());
  REQUIRE(next.ack.has_value());
  CHECK(next.ack->through_seq == 3);
  hub.commit();
  CHECK(hub.task_state(spec.task_id) == "running");
}

TEST_CASE("AgentFrameService: a final before all output is output_incomplete with what is missing",
          "[agent_frame_service]") {
  HubFixture hub;
  const auto spec = hub.submit_and_dispatch();
  REQUIRE(hub.frames.on_started("edge-1", started_frame(spec), "s").ack.has_value());
  const std::string part1 = "0123456789", part2 = "abcdefghij";
  REQUIRE(hub.frames
              .on_output("edge-1", output_frame(spec, StreamName::kStdout, 1, 0, part1),
                         output_id(spec, StreamName::kStdout, 1))
              .ack.has_value());
  hub.commit();

  const std::string final_id = protocol::final_message_id(spec.attempt_id);
  const auto the_final = final_frame(spec, part1 + part2, "");
  auto early = hub.frames.on_final("edge-1", the_final, final_id);
  REQUIRE(early.error.has_value());
  CHECK(early.error->code == "output_incomplete");
  CHECK(early.error->retryable);
  CHECK(early.error->related_message_id == final_id);
  CHECK(early.error->attempt_id == spec.attempt_id);
  REQUIRE(early.error->stream.has_value());
  CHECK(*early.error->stream == StreamName::kStdout);
  REQUIRE(early.error->highest_accepted_seq.has_value());
  CHECK(*early.error->highest_accepted_seq == 1);
  REQUIRE(early.error->next_offset.has_value());
  CHECK(*early.error->next_offset == 10);
  CHECK_FALSE(early.verified);
  REQUIRE(early.missing.size() == 1);
  CHECK(early.missing[0].stream == StreamName::kStdout);
  CHECK(early.missing[0].from_seq == 2);
  CHECK(early.missing[0].from_offset == 10);
  CHECK(early.missing[0].expected_bytes == 20);
  hub.commit();
  // Not accepted: the task still runs and the attempt has no final.
  CHECK(hub.task_state(spec.task_id) == "running");
  CHECK(hub.attempt_state(spec.attempt_id) == "running");

  // The rest arrives; the same final is now accepted and verified.
  REQUIRE(hub.frames
              .on_output("edge-1", output_frame(spec, StreamName::kStdout, 2, 10, part2),
                         output_id(spec, StreamName::kStdout, 2))
              .ack.has_value());
  hub.commit();
  auto accepted = hub.frames.on_final("edge-1", the_final, final_id);
  CHECK(code_of(accepted.error) == "(no error)");
  CHECK(accepted.missing.empty());
  CHECK(accepted.verified);
  hub.commit();
  CHECK(hub.task_state(spec.task_id) == "succeeded");
}

TEST_CASE("AgentFrameService: the same final again is accepted again; a different one conflicts",
          "[agent_frame_service]") {
  HubFixture hub;
  const auto spec = hub.submit_and_dispatch();
  REQUIRE(hub.frames.on_started("edge-1", started_frame(spec), "s").ack.has_value());
  REQUIRE(hub.frames
              .on_output("edge-1", output_frame(spec, StreamName::kStdout, 1, 0, "out\n"),
                         output_id(spec, StreamName::kStdout, 1))
              .ack.has_value());
  hub.commit();
  const std::string final_id = protocol::final_message_id(spec.attempt_id);
  const auto the_final = final_frame(spec, "out\n", "");
  auto first = hub.frames.on_final("edge-1", the_final, final_id);
  CHECK(code_of(first.error) == "(no error)");
  CHECK(first.verified);
  hub.commit();
  CHECK(hub.task_state(spec.task_id) == "succeeded");
  const size_t events_after_first = hub.events.page(spec.task_id, 0, 1000).size();

  // The same final again (an ack lost on the way): accepted, still verified,
  // nothing stored again.
  auto same = hub.frames.on_final("edge-1", the_final, final_id);
  CHECK(code_of(same.error) == "(no error)");
  CHECK(same.verified);
  hub.commit();
  CHECK(hub.events.page(spec.task_id, 0, 1000).size() == events_after_first);

  // A different final for the same attempt: final_conflict; the first stands.
  auto different = hub.frames.on_final("edge-1", final_frame(spec, "out\n", "", 1), final_id);
  REQUIRE(different.error.has_value());
  CHECK(different.error->code == "final_conflict");
  CHECK_FALSE(different.error->retryable);
  CHECK(different.error->attempt_id == spec.attempt_id);
  CHECK_FALSE(different.verified);
  auto other_bytes = the_final;
  other_bytes.report.stdout_summary.sha256 = protocol::sha256_hex("OUT\n");
  auto conflict = hub.frames.on_final("edge-1", other_bytes, final_id);
  CHECK(code_of(conflict.error) == "final_conflict");
  hub.commit();
  CHECK(hub.task_state(spec.task_id) == "succeeded");
  auto task = hub.tasks.find_task(spec.task_id);
  REQUIRE(task.has_value());
  REQUIRE(task->output_verified.has_value());
  CHECK(*task->output_verified);

  // Output after the final: a resent old frame is acked; a new one is refused.
  auto old_frame =
      hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 1, 0, "out\n"),
                           output_id(spec, StreamName::kStdout, 1));
  REQUIRE(old_frame.ack.has_value());
  CHECK(old_frame.ack->through_seq == 1);
  auto beyond =
      hub.frames.on_output("edge-1", output_frame(spec, StreamName::kStdout, 2, 4, "more"),
                           output_id(spec, StreamName::kStdout, 2));
  REQUIRE(beyond.error.has_value());
  CHECK(beyond.error->code == "attempt_finished");
  CHECK_FALSE(beyond.error->retryable);
  hub.commit();
  CHECK(hub.stored_chunks(spec.attempt_id, StreamName::kStdout) == 1);
}

TEST_CASE("AgentFrameService: a final whose bytes differ or were dropped ends the task unverified",
          "[agent_frame_service]") {
  HubFixture hub;
  const auto spec = hub.submit_and_dispatch();
  REQUIRE(hub.frames.on_started("edge-1", started_frame(spec), "s").ack.has_value());

  SECTION("SHA-256 mismatch") {
    REQUIRE(hub.frames
                .on_output("edge-1", output_frame(spec, StreamName::kStdout, 1, 0, "hellO\n"),
                           output_id(spec, StreamName::kStdout, 1))
                .ack.has_value());
    hub.commit();
    auto verdict = hub.frames.on_final("edge-1", final_frame(spec, "hello\n", ""), "f");
    CHECK(code_of(verdict.error) == "(no error)");
    CHECK_FALSE(verdict.verified);
    hub.commit();
    CHECK(hub.task_state(spec.task_id) == "succeeded");
    auto task = hub.tasks.find_task(spec.task_id);
    REQUIRE(task.has_value());
    REQUIRE(task->output_verified.has_value());
    CHECK_FALSE(*task->output_verified);
    CHECK(task->verification_error == "the SHA-256 of the stored stdout differs from the agent's");
  }

  SECTION("bytes dropped, with a gap record") {
    protocol::TaskOutputGap gap;
    gap.attempt = ref_of(spec);
    gap.stream = StreamName::kStderr;
    gap.seq = 1;
    gap.offset = 0;
    gap.length = 100;
    auto gap_verdict = hub.frames.on_gap("edge-1", gap, "g1");
    CHECK_FALSE(gap_verdict.error.has_value());
    REQUIRE(gap_verdict.ack.has_value());
    CHECK(gap_verdict.ack->stream == StreamName::kStderr);
    CHECK(gap_verdict.ack->through_seq == 1);
    hub.commit();
    auto the_final = final_frame(spec, "", std::string(100, 'x'), 2);
    the_final.report.stderr_summary.dropped_bytes = 100;
    auto verdict = hub.frames.on_final("edge-1", the_final, "f");
    CHECK(code_of(verdict.error) == "(no error)");
    CHECK_FALSE(verdict.verified);
    hub.commit();
    CHECK(hub.task_state(spec.task_id) == "failed");
    auto task = hub.tasks.find_task(spec.task_id);
    REQUIRE(task.has_value());
    CHECK(task->verification_error ==
          "the agent dropped 100 bytes of stderr (outbox full); gap events mark where");
  }
}

TEST_CASE("AgentFrameService: agent.hello resumes known attempts and discards unknown ones",
          "[agent_frame_service]") {
  HubFixture hub;
  const auto spec = hub.submit_and_dispatch();
  const auto other = hub.submit_and_dispatch("edge-2");
  REQUIRE(hub.frames.on_started("edge-1", started_frame(spec), "s").ack.has_value());
  for (uint64_t seq = 1; seq <= 2; ++seq) {
    REQUIRE(hub.frames
                .on_output("edge-1", output_frame(spec, StreamName::kStdout, seq, seq - 1, "x"),
                           output_id(spec, StreamName::kStdout, seq))
                .ack.has_value());
  }
  hub.commit();
  CHECK_FALSE(hub.leases.last_seen_ms("edge-1").has_value());

  protocol::AgentHello hello;
  hello.version = "9.9.9";
  hello.instance = "instance-1";
  hello.outbox_rows = 7;
  hello.outbox_bytes = 700;
  hello.running.push_back(ref_of(spec));
  hello.running.push_back({"t-unknown", "t-unknown-a1"});
  hello.running.push_back(ref_of(other));  // edge-2's attempt
  std::vector<protocol::TaskCancel> cancels;
  const auto ack = hub.frames.on_hello("edge-1", hello, "hello-1", cancels);
  hub.commit();

  CHECK(ack.related_message_id == "hello-1");
  CHECK_FALSE(ack.version.empty());
  CHECK(cancels.empty());
  CHECK(ack.finals_held.empty());
  // Unknown, and another agent's (which looks the same): discard.
  REQUIRE(ack.discard.size() == 2);
  std::vector<std::string> discarded = {ack.discard[0].attempt_id, ack.discard[1].attempt_id};
  std::sort(discarded.begin(), discarded.end());
  std::vector<std::string> expected_discard = {other.attempt_id, "t-unknown-a1"};
  std::sort(expected_discard.begin(), expected_discard.end());
  CHECK(discarded == expected_discard);
  CHECK(ack.discard[0].reason == "unknown to the hub");
  CHECK(ack.discard[1].reason == "unknown to the hub");
  // The known running attempt resumes after what is stored, per stream.
  REQUIRE(ack.resume.size() == 2);
  for (const auto& point : ack.resume) {
    CHECK(point.attempt_id == spec.attempt_id);
    CHECK(point.next_seq == (point.stream == StreamName::kStdout ? 3u : 1u));
  }
  CHECK(ack.resume[0].stream != ack.resume[1].stream);
  // Seen, and what it reported is recorded.
  CHECK(hub.leases.last_seen_ms("edge-1").has_value());
  auto listed = hub.agents.list();
  auto edge1 = std::find_if(listed.begin(), listed.end(),
                            [](const hub::AgentRecord& agent) { return agent.name == "edge-1"; });
  REQUIRE(edge1 != listed.end());
  CHECK(edge1->version == "9.9.9");
  REQUIRE(edge1->outbox_rows.has_value());
  CHECK(*edge1->outbox_rows == 7);
  // Nothing of edge-1's was lost by the hello; edge-2's attempt is untouched.
  CHECK(hub.attempt_state(spec.attempt_id) == "running");
  CHECK(hub.attempt_state(other.attempt_id) == "dispatched");

  // After the final: the agent still holds it unacked; the hub says it holds it.
  REQUIRE(hub.frames
              .on_final("edge-1", final_frame(spec, "xx", ""),
                        protocol::final_message_id(spec.attempt_id))
              .verified);
  hub.commit();
  protocol::AgentHello later;
  later.version = "9.9.9";
  later.instance = "instance-1";
  later.unacked_finals.push_back(ref_of(spec));
  later.unacked_finals.push_back({"t-gone", "t-gone-a1"});
  std::vector<protocol::TaskCancel> none;
  const auto later_ack = hub.frames.on_hello("edge-1", later, "hello-2", none);
  hub.commit();
  REQUIRE(later_ack.finals_held.size() == 1);
  CHECK(later_ack.finals_held[0] == spec.attempt_id);
  REQUIRE(later_ack.discard.size() == 1);
  CHECK(later_ack.discard[0].attempt_id == "t-gone-a1");
  CHECK(later_ack.resume.empty());
}

namespace {

// Every byte of hub.db and its WAL, as a file reader (not SQLite) sees them.
std::string raw_database(const std::string& dir) {
  std::string bytes;
  for (const char* suffix : {"", "-wal"}) {
    std::ifstream file(dir + "/data/hub.db" + suffix, std::ios::binary);
    bytes.append(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  return bytes;
}

int64_t count_of(core::SqliteStore& store, const std::string& sql) {
  return store.database().execAndGet(sql).getInt64();
}

}  // namespace

TEST_CASE("secrets are stored sealed, handed to the dispatched attempt, deleted when the task ends",
          "[agent_frame_service][secrets]") {
  HubFixture hub;
  protocol::SubmitRequest request;
  request.agent = "edge-1";
  request.spec.argv = {"env"};
  request.spec.secrets = {{"DB_PASSWORD", "needle-one-7f3a"}, {"API_KEY", "needle-two-91c2"}};
  request.max_attempts = 2;
  auto submitted = hub.dispatch.submit(request);
  REQUIRE(submitted.ok());
  hub.commit();
  const std::string task_id = submitted->id;
  CHECK(submitted->secret_names == std::vector<std::string>{"API_KEY", "DB_PASSWORD"});
  CHECK(hub.tasks.find_task(task_id)->secret_names == submitted->secret_names);

  // Sealed: a nonce of 12 bytes, new for each value; the ciphertext is as
  // long as the value plus GCM's tag; the values are nowhere in the files.
  CHECK(count_of(*hub.store, "SELECT count(*) FROM task_secrets WHERE task_id = '" + task_id +
                                 "' AND length(nonce) = 12 AND length(ciphertext) = 15 + 16") == 2);
  CHECK(count_of(*hub.store, "SELECT count(DISTINCT nonce) FROM task_secrets") == 2);
  const std::string raw = raw_database(hub.dir.path);
  CHECK(raw.size() > 4096);
  CHECK(raw.find("needle-") == std::string::npos);
  CHECK(raw.find("DB_PASSWORD") != std::string::npos);  // names are not secret

  auto spec = hub.dispatch.dispatch_next("edge-1", "instance-1");
  REQUIRE(spec.has_value());
  hub.commit();
  CHECK(spec->secrets == request.spec.secrets);
  CHECK(spec->env.empty());

  // Lost with an attempt left: queued again, the secrets kept for it.
  auto first = hub.tasks.find_attempt(spec->attempt_id);
  REQUIRE(first.has_value());
  hub.transitions.lose_attempt(*first, "test: the agent went away");
  hub.commit();
  CHECK(hub.task_state(task_id) == "queued");
  CHECK(count_of(*hub.store, "SELECT count(*) FROM task_secrets") == 2);
  auto retry = hub.dispatch.dispatch_next("edge-1", "instance-1");
  REQUIRE(retry.has_value());
  hub.commit();
  CHECK(retry->secrets == request.spec.secrets);

  // The final ends the task: no attempt can follow, the secrets go.
  auto final_report = final_frame(*retry, "", "");
  final_report.report.redactions = protocol::RedactionCounts{0, 0};
  auto verdict =
      hub.frames.on_final("edge-1", final_report, protocol::final_message_id(retry->attempt_id));
  CHECK_FALSE(verdict.error.has_value());
  hub.commit();
  CHECK(hub.task_state(task_id) == "succeeded");
  CHECK(count_of(*hub.store, "SELECT count(*) FROM task_secrets") == 0);
  CHECK_THAT(hub.tasks.find_task(task_id)->final_json,
             Catch::Contains(R"("redactions":{"stdout":0,"stderr":0})"));

  // Cancelled while queued, and lost with its agent removed: deleted too.
  auto cancelled = hub.dispatch.submit(request);
  REQUIRE(cancelled.ok());
  hub.commit();
  REQUIRE(hub.dispatch.cancel(cancelled->id, "test").ok());
  hub.commit();
  auto removed = hub.dispatch.submit(request);
  REQUIRE(removed.ok());
  hub.commit();
  REQUIRE(hub.dispatch.dispatch_next("edge-1", "instance-1").has_value());
  hub.commit();
  CHECK(count_of(*hub.store, "SELECT count(*) FROM task_secrets") == 2);
  CHECK(hub.dispatch.end_tasks_of_removed_agent("edge-1") == 1);
  hub.commit();
  CHECK(hub.task_state(removed->id) == "lost");
  CHECK(count_of(*hub.store, "SELECT count(*) FROM task_secrets") == 0);
}

TEST_CASE("secrets that do not open with the hub's key fail their task at dispatch, saying why",
          "[agent_frame_service][secrets]") {
  HubFixture hub;
  protocol::SubmitRequest request;
  request.agent = "edge-1";
  request.spec.argv = {"env"};
  request.spec.secrets = {{"DB_PASSWORD", "needle-one-7f3a"}};
  auto submitted = hub.dispatch.submit(request);
  REQUIRE(submitted.ok());
  hub.commit();
  // The hub restarted with another key (secrets.key lost and made anew).
  std::array<unsigned char, hub::SecretVault::kKeyBytes> other_key{};
  other_key.fill(7);
  hub::SecretVault other_vault(other_key);
  hub::TaskSecrets other_secrets(*hub.store, other_vault);
  hub::TaskTransitions transitions(*hub.store, hub.tasks, other_secrets, hub.events, hub.viewers,
                                   hub.ledger);
  hub::DispatchService dispatch(hub.tasks, hub.agents, other_secrets, transitions);
  auto secrets = other_secrets.load(submitted->id);
  REQUIRE_FALSE(secrets.ok());
  CHECK(secrets.error().code == "secrets_unreadable");
  CHECK_THAT(secrets.error().message,
             Catch::Contains("secret DB_PASSWORD of task " + submitted->id));

  CHECK_FALSE(dispatch.dispatch_next("edge-1", "instance-1").has_value());
  hub.commit();
  CHECK(hub.task_state(submitted->id) == "failed");
  const auto events = hub.events.page(submitted->id, 0, 100);
  REQUIRE_FALSE(events.empty());
  CHECK_THAT(events.back().payload, Catch::Contains("cannot be dispatched") &&
                                        Catch::Contains("secrets.key") &&
                                        !Catch::Contains("needle"));
  CHECK(count_of(*hub.store, "SELECT count(*) FROM task_secrets") == 0);
}

TEST_CASE(
    "a version 4 hub.db is upgraded to 10: tasks keep their rows, secrets and limits their place",
    "[agent_frame_service][secrets][store]") {
  test::TempDir dir("tether-upgrade");
  {
    auto store = test::open_test_hub_store(dir.path);
    // Back to what version 4 wrote: no secret_names, no task_secrets, no
    // limits_json. (The whole way from a real version 3 file: hub_audit_test.cpp.)
    store->database().exec(
        "INSERT INTO tasks (id, agent, state, command_json, env_json, created_at, updated_at) "
        "VALUES ('t-old', 'edge-1', 'queued', '{\"argv\":[\"true\"]}', '{}', 'a', 'b');"
        "DROP TABLE task_secrets; ALTER TABLE tasks DROP COLUMN secret_names;"
        "ALTER TABLE tasks DROP COLUMN limits_json; ALTER TABLE agents DROP COLUMN reported_labels;"
        "ALTER TABLE tasks DROP COLUMN selector; DROP TABLE runs; DROP INDEX tasks_by_run;"
        "DROP INDEX events_by_run; ALTER TABLE tasks DROP COLUMN run_id;"
        "ALTER TABLE tasks DROP COLUMN held; ALTER TABLE tasks DROP COLUMN released_at_ms;"
        "ALTER TABLE events DROP COLUMN run_id; ALTER TABLE agents DROP COLUMN seen_at_ms;"
        "UPDATE schema_version SET version = 4;");
  }
  auto store = test::open_test_hub_store(dir.path);
  CHECK(count_of(*store, "SELECT version FROM schema_version") == 11);
  CHECK(count_of(*store, "SELECT count(*) FROM browser_sessions") == 0);
  CHECK(count_of(*store, "SELECT count(*) FROM runs") == 0);
  CHECK(count_of(*store, "SELECT count(*) FROM task_secrets") == 0);
  hub::TaskRepository tasks(*store);
  auto old = tasks.find_task("t-old");
  REQUIRE(old.has_value());
  CHECK(old->secret_names.empty());
  CHECK_FALSE(old->limits.any());
  CHECK(old->selector.empty());
  CHECK(old->agent == "edge-1");
}
