// agent::ResultChannel and agent::FrameSender in process: an Outbox on a
// temporary state dir and a ResultChannel on one loop, pointed at a
// ScriptedHub (docs/protocol.md 4, 5 and 9). What the agent tells the hub
// in agent.hello, the replay after hub.hello_ack, what acks and errors do
// to the outbox, and the send window.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "agent/agent_hello.hpp"
#include "agent/outbox.hpp"
#include "agent/result_channel.hpp"
#include "core/co_group.hpp"
#include "core/run.hpp"
#include "core/url.hpp"
#include "harness.hpp"
#include "protocol/capabilities.hpp"
#include "protocol/sha256.hpp"
#include "scripted_hub.hpp"

using namespace tether;
using namespace tether::agent;
using namespace tether::test;
using protocol::StreamName;

namespace {

constexpr uint64_t kWaitMs = 10'000;

const protocol::AttemptRef kRunning{"t-1", "t-1-a1"};
const protocol::AttemptRef kOther{"t-2", "t-2-a1"};

JournaledAttempt journaled(const protocol::AttemptRef& attempt) {
  JournaledAttempt record;
  record.task_id = attempt.task_id;
  record.attempt_id = attempt.attempt_id;
  record.pid = 4242;
  record.process_group = 4242;
  record.process_start = 99;
  record.boot_id = "boot";
  record.started_at = "2026-11-22T00:00:00.000Z";
  return record;
}

// One stream of an attempt, written into the outbox chunk by chunk the way
// the attempt runner does: seq from 1, contiguous offsets, the running digest.
struct StreamWriter {
  protocol::AttemptRef attempt;
  StreamName stream = StreamName::kStdout;
  protocol::Sha256 digest;
  uint64_t seq = 0;
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;  // offsets[seq - 1]
  std::vector<std::string> chunks;

  explicit StreamWriter(protocol::AttemptRef ref) : attempt(std::move(ref)) {}

  void write(Outbox& outbox, const std::string& data) {
    digest.update(data);
    seq += 1;
    offsets.push_back(offset);
    chunks.push_back(data);
    outbox.append_output(attempt, {stream, seq, offset, data}, digest);
    offset += data.size();
  }
};

protocol::FinalReport succeeded(uint64_t stdout_bytes, const std::string& stdout_sha256) {
  protocol::FinalReport report;
  report.status = protocol::AttemptStatus::kSucceeded;
  report.exit_code = 0;
  report.started_at = "2026-11-22T00:00:00.000Z";
  report.finished_at = "2026-11-22T00:00:01.000Z";
  report.stdout_summary = {stdout_bytes, stdout_sha256, 0, 0};
  report.stderr_summary = {0, protocol::sha256_hex(""), 0, 0};
  return report;
}

protocol::Ack output_ack(const std::string& attempt_id, uint64_t through_seq) {
  protocol::Ack ack;
  ack.attempt_id = attempt_id;
  ack.acked = protocol::AckedKind::kOutput;
  ack.stream = StreamName::kStdout;
  ack.through_seq = through_seq;
  return ack;
}

protocol::Ack message_ack(const std::string& attempt_id, protocol::AckedKind kind,
                          const std::string& message_id) {
  protocol::Ack ack;
  ack.attempt_id = attempt_id;
  ack.acked = kind;
  ack.related_message_id = message_id;
  if (kind == protocol::AckedKind::kFinal) ack.verified = true;
  return ack;
}

// output_sequence_gap for stdout of t-1-a1: the hub holds seqs up to
// `highest_accepted` (`stored_bytes` bytes) and was sent seq `got`.
protocol::ErrorFrame sequence_gap(uint64_t highest_accepted, uint64_t stored_bytes, uint64_t got) {
  protocol::ErrorFrame gap;
  gap.code = "output_sequence_gap";
  gap.message = "scripted: expected seq " + std::to_string(highest_accepted + 1) + ", got " +
                std::to_string(got);
  gap.retryable = true;
  gap.related_message_id = "t-1-a1:stdout:" + std::to_string(got);
  gap.attempt_id = "t-1-a1";
  gap.stream = StreamName::kStdout;
  gap.highest_accepted_seq = highest_accepted;
  gap.next_offset = stored_bytes;
  return gap;
}

const protocol::OutputChunk* output_of(const protocol::Frame& frame) {
  const auto* output = std::get_if<protocol::TaskOutput>(&frame.payload);
  return output ? &output->chunk : nullptr;
}

// The outbox, the hub and the channel on one loop. run() opens the
// channel once `prepare` has stored frames (committed), runs `body`, then
// stops the channel as the agent does at shutdown.
class ChannelWorld {
 public:
  core::Loop loop;
  TempDir dir;
  std::unique_ptr<Outbox> outbox;
  std::unique_ptr<ScriptedHub> hub;
  std::unique_ptr<ResultChannel> channel;
  ChannelOptions options;
  // What the channel told its handlers, in order.
  std::vector<std::string> discarded;
  uint64_t wakes = 0;
  core::Notification handled{loop};

  ChannelWorld() {
    OutboxOptions outbox_options;
    outbox_options.agent_id = "edge-1";
    auto opened = Outbox::open(loop, dir.path() + "/state", outbox_options);
    REQUIRE(opened.ok());
    outbox = std::move(*opened);
    options.agent = "edge-1";
    options.instance = "run-1";
    options.token_source = "the test";
    options.hub.token = "tether_test";
  }

  void run(const std::function<void()>& prepare, const std::function<core::Co<void>()>& body) {
    auto scenario = [&]() -> core::Co<void> {
      hub = std::make_unique<ScriptedHub>(loop);
      core::CancellationSource stop;
      core::CoGroup group;
      std::exception_ptr failure;
      // A failed REQUIRE still stops the channel and the hub: the loop
      // only returns once their handles are closed.
      try {
        auto url = core::parse_url(hub->url());
        REQUIRE(url.ok());
        options.hub.url = *url;
        prepare();
        const bool stored = co_await outbox->changed().wait(kWaitMs);
        REQUIRE(stored);
        channel = std::make_unique<ResultChannel>(loop, *outbox, options, handlers());
        group.spawn(channel->run(stop.token()));
        co_await body();
      } catch (...) {
        failure = std::current_exception();
      }
      stop.cancel();
      co_await group.join();
      channel.reset();
      hub.reset();
      if (failure) std::rethrow_exception(failure);
    };
    core::run_to_completion(loop, scenario());
  }

  // The next frame the hub receives (hello excluded); REQUIREs one.
  core::Co<protocol::Frame> frame() {
    auto next = co_await hub->next_frame(kWaitMs);
    REQUIRE(next.has_value());
    co_return std::move(*next);
  }

  // Waits until `ready` holds, looking again after each outbox commit.
  core::Co<bool> outbox_until(std::function<bool()> ready) {
    loop.update_time();
    const uint64_t deadline = loop.now_ms() + kWaitMs;
    while (!ready()) {
      loop.update_time();
      if (loop.now_ms() >= deadline) co_return false;
      (void)co_await outbox->changed().wait(deadline - loop.now_ms());
    }
    co_return true;
  }

  // Waits until `ready` holds, looking again after each handler call.
  core::Co<bool> handlers_until(std::function<bool()> ready) {
    loop.update_time();
    const uint64_t deadline = loop.now_ms() + kWaitMs;
    while (!ready()) {
      loop.update_time();
      if (loop.now_ms() >= deadline) co_return false;
      (void)co_await handled.wait(deadline - loop.now_ms());
    }
    co_return true;
  }

  // A count from the outbox file, as this process sees it.
  int64_t count(const std::string& sql) {
    SQLite::Statement query(outbox->store().database(), sql);
    REQUIRE(query.executeStep());
    return query.getColumn(0).getInt64();
  }

 private:
  ChannelHandlers handlers() {
    ChannelHandlers result;
    result.wake = [this] {
      wakes += 1;
      handled.notify_all();
    };
    result.discarded = [this](const std::string& attempt_id) {
      discarded.push_back(attempt_id);
      handled.notify_all();
    };
    return result;
  }
};

// The replay order of the interleaved outbox in the replay case.
std::vector<std::string> interleaved_order() {
  return {"t-1-a1:started",  "t-1-a1:stdout:1", "t-2-a1:started", "t-1-a1:stdout:2",
          "t-2-a1:stdout:1", "t-1-a1:stdout:3", "t-2-a1:final"};
}

std::vector<std::string> only(std::string attempt_id) {
  std::vector<std::string> list;
  list.push_back(std::move(attempt_id));
  return list;
}

bool is_utc_timestamp(const std::string& text) {
  static const std::regex pattern(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  return std::regex_match(text, pattern);
}

}  // namespace

TEST_CASE("agent.hello lists the running attempts, the outbox ranges and the unacked finals",
          "[channel]") {
  ChannelWorld world;
  StreamWriter running(kRunning);
  world.run(
      [&] {
        Outbox& outbox = *world.outbox;
        outbox.record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        running.write(outbox, "one\n");
        running.write(outbox, "two\n");
        running.write(outbox, "three\n");
        outbox.record_started(journaled(kOther), {4343, "2026-11-22T00:00:00.000Z"});
        outbox.append_final(kOther, succeeded(0, protocol::sha256_hex("")));
      },
      [&]() -> core::Co<void> {
        const bool greeted = co_await world.hub->wait_for_hellos(1, kWaitMs);
        REQUIRE(greeted);
        const protocol::AgentHello hello = world.hub->hellos().front();
        CHECK(hello.version == TETHER_VERSION);
        CHECK(hello.capabilities == protocol::agent_capabilities());
        CHECK(hello.instance == "run-1");
        CHECK_FALSE(hello.partial);
        REQUIRE(hello.running.size() == 1);
        CHECK(hello.running[0].task_id == "t-1");
        CHECK(hello.running[0].attempt_id == "t-1-a1");
        REQUIRE(hello.outbox.size() == 1);
        CHECK(hello.outbox[0].attempt.task_id == "t-1");
        CHECK(hello.outbox[0].attempt.attempt_id == "t-1-a1");
        CHECK(hello.outbox[0].stream == StreamName::kStdout);
        CHECK(hello.outbox[0].first_seq == 1);
        CHECK(hello.outbox[0].last_seq == 3);
        REQUIRE(hello.unacked_finals.size() == 1);
        CHECK(hello.unacked_finals[0].task_id == "t-2");
        CHECK(hello.unacked_finals[0].attempt_id == "t-2-a1");
        // Two started frames, three output frames, one final.
        REQUIRE(hello.outbox_rows.has_value());
        CHECK(*hello.outbox_rows == 6);
        CHECK(world.outbox->frames().rows() == 6);
        REQUIRE(hello.outbox_bytes.has_value());
        CHECK(*hello.outbox_bytes == world.outbox->frames().bytes());

        // The next session's hello says what is left: seq 1 and the final
        // were acknowledged in between.
        for (int i = 0; i < 6; ++i)
          (void)co_await world.frame();
        world.hub->send(output_ack("t-1-a1", 1));
        world.hub->send(message_ack("t-2-a1", protocol::AckedKind::kFinal, "t-2-a1:final"));
        std::function<bool()> four_left = [&] { return world.outbox->frames().rows() == 4; };
        const bool acked = co_await world.outbox_until(four_left);
        REQUIRE(acked);
        world.hub->close_channel();
        const bool again = co_await world.hub->wait_for_hellos(2, kWaitMs);
        REQUIRE(again);
        const protocol::AgentHello second = world.hub->hellos().back();
        REQUIRE(second.running.size() == 1);
        CHECK(second.running[0].attempt_id == "t-1-a1");
        REQUIRE(second.outbox.size() == 1);
        CHECK(second.outbox[0].first_seq == 2);
        CHECK(second.outbox[0].last_seq == 3);
        CHECK(second.unacked_finals.empty());
        REQUIRE(second.outbox_rows.has_value());
        CHECK(*second.outbox_rows == 4);
        // The second session replays what is left, from its start.
        for (int i = 0; i < 4; ++i)
          (void)co_await world.frame();
        CHECK(world.channel->sessions() == 2);
      });
}

TEST_CASE("the replay follows outbox order with sent_at stamped, and acks delete what they cover",
          "[channel]") {
  ChannelWorld world;
  StreamWriter first(kRunning);
  StreamWriter second(kOther);
  world.run(
      [&] {
        // Two attempts interleaved: the replay is in storage order, not per attempt.
        Outbox& outbox = *world.outbox;
        outbox.record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        first.write(outbox, "a1\n");
        outbox.record_started(journaled(kOther), {4343, "2026-11-22T00:00:00.000Z"});
        first.write(outbox, "a2\n");
        second.write(outbox, "b1\n");
        first.write(outbox, "a3\n");
        outbox.append_final(kOther, succeeded(second.offset, second.digest.hex_digest()));
      },
      [&]() -> core::Co<void> {
        const std::vector<std::string> expected = interleaved_order();
        std::vector<std::string> received;
        for (size_t i = 0; i < expected.size(); ++i) {
          const protocol::Frame frame = co_await world.frame();
          received.push_back(frame.message_id);
          INFO("frame " << frame.message_id << " sent_at '" << frame.sent_at << "'");
          CHECK(frame.agent_id == "edge-1");
          CHECK(is_utc_timestamp(frame.sent_at));
          if (const auto* chunk = output_of(frame);
              chunk && frame.message_id == "t-1-a1:stdout:2") {
            CHECK(chunk->data == "a2\n");
            CHECK(chunk->offset == 3);
          }
        }
        CHECK(received == expected);
        CHECK(world.hub->hellos().size() == 1);
        CHECK(world.channel->counters().frames_sent == 7);
        CHECK(world.outbox->frames().rows() == 7);

        // Output of t-1-a1 through seq 2: those two rows go, seq 3 stays.
        world.hub->send(output_ack("t-1-a1", 2));
        std::function<bool()> five = [&] { return world.outbox->frames().rows() == 5; };
        const bool output_acked = co_await world.outbox_until(five);
        REQUIRE(output_acked);
        const auto held = world.outbox->frames().first_held_seq("t-1-a1", StreamName::kStdout);
        REQUIRE(held.has_value());
        CHECK(*held == 3);

        // The final's ack removes the final and its attempt.
        CHECK(world.count("SELECT COUNT(*) FROM attempts WHERE attempt_id = 't-2-a1'") == 1);
        world.hub->send(message_ack("t-2-a1", protocol::AckedKind::kFinal, "t-2-a1:final"));
        std::function<bool()> four = [&] { return world.outbox->frames().rows() == 4; };
        const bool final_acked = co_await world.outbox_until(four);
        REQUIRE(final_acked);
        CHECK(world.outbox->frames().finals().empty());
        CHECK(world.count("SELECT COUNT(*) FROM frames WHERE kind = 'final'") == 0);
        CHECK(world.count("SELECT COUNT(*) FROM attempts WHERE attempt_id = 't-2-a1'") == 0);
        CHECK(world.count("SELECT COUNT(*) FROM attempts WHERE attempt_id = 't-1-a1'") == 1);

        // The rest, and nothing was sent twice.
        world.hub->send(message_ack("t-1-a1", protocol::AckedKind::kStarted, "t-1-a1:started"));
        world.hub->send(output_ack("t-1-a1", 3));
        world.hub->send(message_ack("t-2-a1", protocol::AckedKind::kStarted, "t-2-a1:started"));
        world.hub->send(output_ack("t-2-a1", 1));
        std::function<bool()> empty = [&] { return world.outbox->frames().rows() == 0; };
        const bool drained = co_await world.outbox_until(empty);
        CHECK(drained);
        CHECK(world.outbox->frames().bytes() == 0);
        CHECK(world.channel->counters().frames_sent == 7);
        CHECK(world.channel->counters().acks_received == 6);
      });
}

TEST_CASE("a retryable output_sequence_gap makes the channel resend from highest_accepted_seq + 1",
          "[channel]") {
  ChannelWorld world;
  StreamWriter out(kRunning);
  world.run(
      [&] {
        world.outbox->record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        for (const char* line : {"first\n", "second\n", "third\n", "fourth\n"})
          out.write(*world.outbox, line);
      },
      [&]() -> core::Co<void> {
        for (int i = 0; i < 5; ++i)
          (void)co_await world.frame();
        world.hub->send(message_ack("t-1-a1", protocol::AckedKind::kStarted, "t-1-a1:started"));

        // "I have seq 1 only".
        const protocol::ErrorFrame gap = sequence_gap(1, out.offsets[1], 3);
        world.hub->send(gap);
        for (uint64_t seq = 2; seq <= 4; ++seq) {
          const protocol::Frame again = co_await world.frame();
          const auto* chunk = output_of(again);
          REQUIRE(chunk != nullptr);
          CHECK(again.message_id ==
                protocol::output_message_id("t-1-a1", StreamName::kStdout, seq));
          CHECK(chunk->seq == seq);
          CHECK(chunk->offset == out.offsets[seq - 1]);
          CHECK(chunk->data == out.chunks[seq - 1]);
        }
        // The gap error said seq 1 is stored: it is gone from the outbox.
        std::function<bool()> rest = [&] { return world.outbox->frames().rows() == 3; };
        const bool trimmed = co_await world.outbox_until(rest);
        REQUIRE(trimmed);
        const auto held = world.outbox->frames().first_held_seq("t-1-a1", StreamName::kStdout);
        REQUIRE(held.has_value());
        CHECK(*held == 2);
        CHECK(world.channel->counters().frames_sent == 8);

        // Sent back to the same point again: the resend waits (100 ms first).
        world.loop.update_time();
        const uint64_t refused_at = world.loop.now_ms();
        world.hub->send(gap);
        const protocol::Frame later = co_await world.frame();
        world.loop.update_time();
        CHECK(later.message_id == "t-1-a1:stdout:2");
        CHECK(world.loop.now_ms() - refused_at >= 100);
        for (int i = 0; i < 2; ++i)
          (void)co_await world.frame();

        world.hub->send(output_ack("t-1-a1", 4));
        std::function<bool()> empty = [&] { return world.outbox->frames().rows() == 0; };
        const bool drained = co_await world.outbox_until(empty);
        CHECK(drained);
      });
}

TEST_CASE(
    "a frame refused for good ends its stream: nothing later of it is sent, and the final counts "
    "the rest as undelivered",
    "[channel]") {
  ChannelWorld world;
  StreamWriter out(kRunning);
  world.run(
      [&] {
        world.outbox->record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        for (char letter = 'a'; letter <= 'e'; ++letter)
          out.write(*world.outbox, std::string(10, letter));
      },
      [&]() -> core::Co<void> {
        for (int i = 0; i < 6; ++i)
          (void)co_await world.frame();
        world.hub->send(message_ack("t-1-a1", protocol::AckedKind::kStarted, "t-1-a1:started"));
        world.hub->send(output_ack("t-1-a1", 2));
        protocol::ErrorFrame mismatch;
        mismatch.code = "output_offset_mismatch";
        mismatch.message = "scripted refusal";
        mismatch.retryable = false;
        mismatch.related_message_id = "t-1-a1:stdout:3";
        mismatch.attempt_id = "t-1-a1";
        mismatch.stream = StreamName::kStdout;
        mismatch.highest_accepted_seq = 2;
        mismatch.next_offset = 20;
        world.hub->send(mismatch);
        // Seq 3 to 5 leave the outbox with seq 1, 2 and the started frame.
        std::function<bool()> empty = [&] { return world.outbox->frames().rows() == 0; };
        const bool abandoned = co_await world.outbox_until(empty);
        REQUIRE(abandoned);

        // Output still to come is counted, not stored; the final says so.
        out.write(*world.outbox, std::string(10, 'f'));
        CHECK(world.outbox->frames().rows() == 0);
        world.outbox->append_final(kRunning, succeeded(out.offset, out.digest.hex_digest()));
        const protocol::Frame frame = co_await world.frame();
        REQUIRE(std::holds_alternative<protocol::TaskFinal>(frame.payload));
        const auto& report = std::get<protocol::TaskFinal>(frame.payload).report;
        CHECK(report.stdout_summary.bytes == 60);
        CHECK(report.stdout_summary.undelivered_bytes == 40);
        CHECK(report.stdout_summary.dropped_bytes == 40);
        CHECK(report.stderr_summary.undelivered_bytes == 0);
        CHECK_THAT(report.error, Catch::Contains("stdout could not be delivered from seq 3"));
        CHECK_THAT(report.error, Catch::Contains("output_offset_mismatch"));
        // Six frames first, then only the final: nothing of stdout again.
        CHECK(world.channel->counters().frames_sent == 7);

        world.hub->send(message_ack("t-1-a1", protocol::AckedKind::kFinal, "t-1-a1:final"));
        std::function<bool()> forgotten = [&] {
          return world.outbox->frames().rows() == 0 &&
                 world.count("SELECT COUNT(*) FROM attempts") == 0;
        };
        const bool acked = co_await world.outbox_until(forgotten);
        CHECK(acked);
      });
}

TEST_CASE("unknown_attempt forgets everything of the attempt and tells the discarded handler",
          "[channel]") {
  ChannelWorld world;
  StreamWriter first(kRunning);
  StreamWriter second(kOther);
  world.run(
      [&] {
        Outbox& outbox = *world.outbox;
        outbox.record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        first.write(outbox, "a1\n");
        first.write(outbox, "a2\n");
        outbox.record_started(journaled(kOther), {4343, "2026-11-22T00:00:00.000Z"});
        second.write(outbox, "b1\n");
      },
      [&]() -> core::Co<void> {
        for (int i = 0; i < 5; ++i)
          (void)co_await world.frame();
        protocol::ErrorFrame unknown;
        unknown.code = "unknown_attempt";
        unknown.message = "scripted: no such attempt";
        unknown.retryable = false;
        unknown.related_message_id = "t-1-a1:stdout:1";
        unknown.attempt_id = "t-1-a1";
        world.hub->send(unknown);
        std::function<bool()> told = [&] { return !world.discarded.empty(); };
        const bool discarded = co_await world.handlers_until(told);
        REQUIRE(discarded);
        const std::vector<std::string> told_of = only("t-1-a1");
        CHECK(world.discarded == told_of);
        std::function<bool()> only_other = [&] { return world.outbox->frames().rows() == 2; };
        const bool forgotten = co_await world.outbox_until(only_other);
        REQUIRE(forgotten);
        CHECK(world.count("SELECT COUNT(*) FROM frames WHERE attempt_id = 't-1-a1'") == 0);
        CHECK(world.count("SELECT COUNT(*) FROM attempts WHERE attempt_id = 't-1-a1'") == 0);
        CHECK(world.count("SELECT COUNT(*) FROM frames WHERE attempt_id = 't-2-a1'") == 2);
        // Its final, when the process ends, is not stored either.
        world.outbox->append_final(kRunning, succeeded(first.offset, first.digest.hex_digest()));
        CHECK(world.outbox->frames().rows() == 2);
        CHECK(world.outbox->frames().finals().empty());
      });
}

TEST_CASE("a hello_ack discard forgets the attempt before the replay and tells the handler",
          "[channel]") {
  ChannelWorld world;
  StreamWriter first(kRunning);
  world.run(
      [&] {
        Outbox& outbox = *world.outbox;
        outbox.record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        first.write(outbox, "a1\n");
        outbox.record_started(journaled(kOther), {4343, "2026-11-22T00:00:00.000Z"});
        protocol::HubHelloAck ack;
        ack.related_message_id = "hello:edge-1:1";
        ack.version = "scripted";
        ack.capabilities = protocol::hub_capabilities();
        ack.discard.push_back({"t-1-a1", "lost"});
        protocol::Frame reply;
        reply.message_id = "hub:hello";
        reply.agent_id = "edge-1";
        reply.sent_at = "2026-11-22T00:00:00.000Z";
        reply.payload = std::move(ack);
        world.hub->set_hello_reply(protocol::encode_frame(reply));
      },
      [&]() -> core::Co<void> {
        // Only the other attempt's frame is replayed.
        const protocol::Frame frame = co_await world.frame();
        CHECK(frame.message_id == "t-2-a1:started");
        const std::vector<std::string> told_of = only("t-1-a1");
        CHECK(world.discarded == told_of);
        REQUIRE(world.hub->hellos().size() == 1);
        CHECK(world.hub->hellos()[0].running.size() == 2);  // it did say it held t-1-a1
        std::function<bool()> only_other = [&] { return world.outbox->frames().rows() == 1; };
        const bool forgotten = co_await world.outbox_until(only_other);
        REQUIRE(forgotten);
        CHECK(world.count("SELECT COUNT(*) FROM frames WHERE attempt_id = 't-1-a1'") == 0);
        CHECK(world.count("SELECT COUNT(*) FROM attempts WHERE attempt_id = 't-1-a1'") == 0);
        CHECK(world.channel->counters().frames_sent == 1);
      });
}

TEST_CASE("the send window bounds what is sent before acks; acks let the rest go", "[channel]") {
  constexpr uint64_t kWindow = 64 << 10;
  constexpr uint64_t kChunks = 64;
  // One output frame: 4 KiB of data and its JSON.
  constexpr uint64_t kLargestFrame = 4096 + 1024;
  ChannelWorld world;
  world.options.send_window_bytes = kWindow;
  StreamWriter out(kRunning);
  world.run(
      [&] {
        world.outbox->record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        for (uint64_t i = 0; i < kChunks; ++i)
          out.write(*world.outbox, std::string(4096, static_cast<char>('a' + i % 26)));
      },
      [&]() -> core::Co<void> {
        CHECK(world.outbox->frames().bytes() > 4 * kWindow);
        const uint64_t total = kChunks + 1;  // and the started frame, never acked here
        uint64_t received = 0;
        uint64_t highest_seq = 0;
        uint64_t rounds = 0;
        uint64_t bytes_before = 0;
        while (received < total) {
          // The first frame of a round: the sender has sent all it will
          // until the next ack (one pass of its loop, no wait in between).
          const protocol::Frame opening = co_await world.frame();
          const ResultChannel::Counters sent = world.channel->counters();
          uint64_t frames = 1;
          if (const auto* chunk = output_of(opening)) highest_seq = chunk->seq;
          while (received + frames < sent.frames_sent) {
            const protocol::Frame frame = co_await world.frame();
            if (const auto* chunk = output_of(frame)) highest_seq = chunk->seq;
            ++frames;
          }
          received += frames;
          // A round trip: the agent has read everything the hub sent so far,
          // and sends nothing more without an ack.
          const uint64_t wakes = world.wakes;
          world.hub->send(protocol::HubWake{});
          std::function<bool()> woken = [&] { return world.wakes > wakes; };
          const bool answered = co_await world.handlers_until(woken);
          REQUIRE(answered);
          const ResultChannel::Counters after = world.channel->counters();
          CHECK(after.frames_sent == sent.frames_sent);
          const uint64_t round_bytes = sent.bytes_sent - bytes_before;
          bytes_before = sent.bytes_sent;
          INFO("round " << rounds << ": " << frames << " frames, " << round_bytes << " bytes");
          CHECK(round_bytes < kWindow + kLargestFrame);
          if (received < total) CHECK(round_bytes + kLargestFrame >= kWindow);  // it filled it
          ++rounds;
          REQUIRE(rounds < 20);
          world.hub->send(output_ack("t-1-a1", highest_seq));
        }
        CHECK(received == total);
        CHECK(highest_seq == kChunks);
        CHECK(rounds >= 4);  // 256 KiB of output through a 64 KiB window
        world.hub->send(message_ack("t-1-a1", protocol::AckedKind::kStarted, "t-1-a1:started"));
        std::function<bool()> empty = [&] { return world.outbox->frames().rows() == 0; };
        const bool drained = co_await world.outbox_until(empty);
        CHECK(drained);
      });
}

TEST_CASE("an ack is owed from when a frame is sent, not from the last ack before a quiet spell",
          "[channel]") {
  ChannelWorld world;
  world.options.keepalive_s = 1;  // a session without acks for 3 s while frames wait ends
  StreamWriter out(kRunning);
  world.run(
      [&] {
        world.outbox->record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
      },
      [&]() -> core::Co<void> {
        const protocol::Frame started = co_await world.frame();
        world.hub->send(
            message_ack(kRunning.attempt_id, protocol::AckedKind::kStarted, started.message_id));
        std::function<bool()> acked = [&] { return world.outbox->frames().rows() == 0; };
        const bool emptied = co_await world.outbox_until(acked);
        REQUIRE(emptied);
        // Longer than 3 keepalives without anything to ack.
        const auto quiet = co_await core::sleep_for(world.loop, 4000);
        REQUIRE(quiet.ok());
        out.write(*world.outbox, "after the quiet spell\n");
        const protocol::Frame output = co_await world.frame();
        REQUIRE(output_of(output) != nullptr);
        // The hub takes 2.5 s to ack: within the 3 s owed, so the session stays.
        const bool reconnected = co_await world.hub->wait_for_hellos(2, 2500);
        CHECK_FALSE(reconnected);
        CHECK(world.channel->sessions() == 1);
        world.hub->send(output_ack(kRunning.attempt_id, 1));
        const bool delivered = co_await world.outbox_until(acked);
        CHECK(delivered);
      });
}

TEST_CASE("a gap error asking for seqs the hub acked and the outbox deleted ends the stream",
          "[channel]") {
  ChannelWorld world;
  StreamWriter out(kRunning);
  world.run(
      [&] {
        world.outbox->record_started(journaled(kRunning), {4242, "2026-11-22T00:00:00.000Z"});
        for (const char* line : {"first\n", "second\n", "third\n", "fourth\n"})
          out.write(*world.outbox, line);
      },
      [&]() -> core::Co<void> {
        for (int i = 0; i < 5; ++i)
          (void)co_await world.frame();
        world.hub->send(message_ack("t-1-a1", protocol::AckedKind::kStarted, "t-1-a1:started"));
        world.hub->send(output_ack("t-1-a1", 3));
        std::function<bool()> acked = [&] { return world.outbox->frames().rows() == 1; };
        const bool deleted = co_await world.outbox_until(acked);
        REQUIRE(deleted);
        // The hub lost what it acked and asks for seq 2 again.
        const protocol::ErrorFrame gap = sequence_gap(1, out.offsets[1], 4);
        world.hub->send(gap);
        std::function<bool()> ended = [&] { return world.outbox->frames().rows() == 0; };
        const bool abandoned = co_await world.outbox_until(ended);
        REQUIRE(abandoned);
        world.outbox->append_final(kRunning, succeeded(out.offset, out.digest.hex_digest()));
        std::function<bool()> stored = [&] { return !world.outbox->frames().finals().empty(); };
        const bool has_final = co_await world.outbox_until(stored);
        REQUIRE(has_final);
        const protocol::Frame final_frame = co_await world.frame();
        const auto* final_payload = std::get_if<protocol::TaskFinal>(&final_frame.payload);
        REQUIRE(final_payload != nullptr);
        const auto& summary = final_payload->report.stdout_summary;
        CHECK(summary.undelivered_bytes == out.offset - out.offsets[1]);
        CHECK_THAT(
            final_payload->report.error,
            Catch::Contains("stdout could not be delivered from seq 2: the hub no longer had"));
      });
}
