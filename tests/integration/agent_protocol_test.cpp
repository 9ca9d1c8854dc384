// The real tether-agent against a ScriptedHub: the parts of the protocol a
// well-behaved hub rarely exercises. Retry-After and hub.wake on the poll,
// the HTTP fallback for a final left unacknowledged, gap errors and refused
// frames, the send window, and reconnect backoff.
#include <signal.h>

#include <set>

#include "agent_world.hpp"
#include "core/run.hpp"
#include "protocol/task_spec.hpp"
#include "scripted_hub.hpp"

using namespace tether;
using namespace tether::test;
using protocol::StreamName;

namespace {

struct ScriptedWorld {
  core::Loop loop;
  TempDir dir;
  std::unique_ptr<ScriptedHub> hub;
  AgentProcess agent{loop, dir.path(), "edge-1", "tether_scripted"};

  // Starts the scripted hub and the agent, runs `body`, then kills the
  // agent (shutdown has its own tests) and stops the hub.
  void run(const std::function<core::Co<void>()>& body) {
    auto scenario = [&]() -> core::Co<void> {
      hub = std::make_unique<ScriptedHub>(loop);
      agent.set("hub_url", hub->url());
      std::exception_ptr failure;
      try {
        co_await agent.start();
        co_await body();
      } catch (...) {
        failure = std::current_exception();
      }
      if (agent.process().running()) (void)co_await agent.stop(SIGKILL);
      hub.reset();
      LoggedProcess::kill_all(loop);
      if (failure) std::rethrow_exception(failure);
    };
    try {
      core::run_to_completion(loop, scenario());
    } catch (...) {
      std::fprintf(stderr, "---- tether-agent log ----\n%s------\n", agent.log().c_str());
      throw;
    }
  }
};

std::string task_body(const std::string& task_id, const std::string& shell) {
  protocol::TaskSpec spec;
  spec.task_id = task_id;
  spec.attempt_id = task_id + "-a1";
  spec.shell = shell;
  return protocol::encode_task(spec, 300);
}

core::HttpResponse error_response(int status, const std::string& retry_after) {
  auto response = core::json_response(
      status, R"({"error":{"code":"busy","message":"scripted","retryable":true}})");
  if (!retry_after.empty()) response.headers.emplace_back("retry-after", retry_after);
  return response;
}

// Reads frames until one satisfies `wanted`; REQUIREs it within the time.
core::Co<protocol::Frame> frame_where(ScriptedHub& hub,
                                      std::function<bool(const protocol::Frame&)> wanted,
                                      uint64_t timeout_ms = 20'000) {
  for (;;) {
    auto frame = co_await hub.next_frame(timeout_ms);
    REQUIRE(frame.has_value());
    if (wanted(*frame)) co_return std::move(*frame);
  }
}

protocol::Ack output_ack(const std::string& attempt_id, uint64_t through_seq) {
  protocol::Ack ack;
  ack.attempt_id = attempt_id;
  ack.acked = protocol::AckedKind::kOutput;
  ack.stream = StreamName::kStdout;
  ack.through_seq = through_seq;
  return ack;
}

protocol::Ack message_ack(const protocol::Frame& frame, protocol::AckedKind kind,
                          const std::string& attempt_id) {
  protocol::Ack ack;
  ack.attempt_id = attempt_id;
  ack.acked = kind;
  ack.related_message_id = frame.message_id;
  if (kind == protocol::AckedKind::kFinal) ack.verified = true;
  return ack;
}

bool is_output(const protocol::Frame& frame) {
  return std::holds_alternative<protocol::TaskOutput>(frame.payload);
}

}  // namespace

TEST_CASE("the poller honours Retry-After, and hub.wake polls at once", "[agent][scripted]") {
  ScriptedWorld world;
  world.run([&]() -> core::Co<void> {
    auto first = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(first.has_value());
    CHECK(first->request.authorization == "Bearer tether_scripted");
    first->exchange->respond(error_response(503, "3"));
    auto second = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(second.has_value());
    CHECK(second->at_ms - first->at_ms >= 2900);  // not the 1 s its own backoff would allow

    // A long Retry-After, then work appears: hub.wake ends the wait.
    second->exchange->respond(error_response(503, "120"));
    const bool connected = co_await world.hub->wait_for_connects(1, 10'000);
    REQUIRE(connected);
    auto no_poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 500);
    CHECK_FALSE(no_poll.has_value());
    world.hub->send(protocol::HubWake{});
    auto woken = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    CHECK(woken.has_value());
  });
}

TEST_CASE("a final not acked on the channel within 10 s goes over HTTP; 409 and 503 are retried",
          "[agent][scripted]") {
  ScriptedWorld world;
  world.run([&]() -> core::Co<void> {
    // The channel first: a final produced while it is down goes over HTTP at
    // once, and this case is about the 10 s patience with a live channel.
    const bool live = co_await world.agent.wait_for_log("connected to", 10'000);
    REQUIRE(live);
    auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(poll.has_value());
    poll->exchange->respond(core::json_response(200, task_body("t-1", "printf hello")));

    // started and output are acked; the final is not.
    const std::string attempt = "t-1-a1";
    std::function<bool(const protocol::Frame&)> is_final = [&](const protocol::Frame& frame) {
      if (std::holds_alternative<protocol::TaskStarted>(frame.payload)) {
        world.hub->send(message_ack(frame, protocol::AckedKind::kStarted, attempt));
      } else if (is_output(frame)) {
        world.hub->send(
            output_ack(attempt, std::get<protocol::TaskOutput>(frame.payload).chunk.seq));
      }
      return std::holds_alternative<protocol::TaskFinal>(frame.payload);
    };
    const protocol::Frame final_frame = co_await frame_where(*world.hub, is_final);
    world.loop.update_time();
    const uint64_t sent_at = world.loop.now_ms();
    CHECK(final_frame.message_id == "t-1-a1:final");

    auto put = co_await world.hub->next_request("/api/v1/attempts/t-1-a1/final", 30'000);
    REQUIRE(put.has_value());
    CHECK(put->request.method == "PUT");
    CHECK(put->at_ms - sent_at >= 9900);
    auto body = protocol::decode_frame(put->request.body);
    REQUIRE(body.ok());
    CHECK(body->message_id == "t-1-a1:final");
    CHECK(std::get<protocol::TaskFinal>(body->payload).report.stdout_summary.bytes == 5);
    put->exchange->respond(core::json_response(
        409, R"({"error":{"code":"output_incomplete","message":"scripted","retryable":true}})"));

    auto again = co_await world.hub->next_request("/api/v1/attempts/t-1-a1/final", 30'000);
    REQUIRE(again.has_value());
    again->exchange->respond(error_response(503, "1"));
    auto third = co_await world.hub->next_request("/api/v1/attempts/t-1-a1/final", 30'000);
    REQUIRE(third.has_value());
    CHECK(third->at_ms - again->at_ms >= 950);
    third->exchange->respond(core::json_response(200, R"({"verified":true})"));
    const bool delivered =
        co_await world.agent.wait_for_log("final of t-1-a1 delivered over HTTP", 10'000);
    CHECK(delivered);
    CHECK(sqlite_query(world.agent.outbox_path(), "SELECT count(*) FROM frames") == "0");
  });
}

TEST_CASE(
    "a retryable gap error resends from highest_accepted_seq + 1; a refused frame ends its "
    "stream, and the final accounts for the rest",
    "[agent][scripted]") {
  ScriptedWorld world;
  world.agent.set("chunk_bytes", "4096");
  world.run([&]() -> core::Co<void> {
    auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(poll.has_value());
    // Eight pieces 100 ms apart: each becomes its own frame.
    poll->exchange->respond(core::json_response(
        200, task_body("t-2", writer_command({"paced", "41", "4096", "8", "100"}))));
    const std::string attempt = "t-2-a1";

    std::map<uint64_t, std::string> first_copy;  // seq -> data, as first sent
    std::function<bool(const protocol::Frame&)> third = [&](const protocol::Frame& frame) {
      if (!is_output(frame)) return false;
      const auto& chunk = std::get<protocol::TaskOutput>(frame.payload).chunk;
      first_copy[chunk.seq] = chunk.data;
      return chunk.seq == 3;
    };
    const protocol::Frame third_frame = co_await frame_where(*world.hub, third);
    (void)third_frame;

    // "I have seq 1 only": the agent must go back to 2, same ids, same bytes.
    protocol::ErrorFrame gap;
    gap.code = "output_sequence_gap";
    gap.message = "scripted";
    gap.retryable = true;
    gap.attempt_id = attempt;
    gap.stream = StreamName::kStdout;
    gap.highest_accepted_seq = 1;
    gap.next_offset = 4096;
    world.hub->send(gap);
    world.hub->send(output_ack(attempt, 1));
    std::function<bool(const protocol::Frame&)> resent = [&](const protocol::Frame& frame) {
      return is_output(frame) && std::get<protocol::TaskOutput>(frame.payload).chunk.seq == 2;
    };
    const protocol::Frame again = co_await frame_where(*world.hub, resent);
    CHECK(again.message_id == "t-2-a1:stdout:2");
    CHECK(std::get<protocol::TaskOutput>(again.payload).chunk.data == first_copy[2]);
    CHECK(std::get<protocol::TaskOutput>(again.payload).chunk.offset == 4096);

    // A non-retryable error about one frame (an offset the hub will never
    // take): every later frame would only meet a gap error, so the stream
    // ends there, and nothing of it is sent again.
    std::function<bool(const protocol::Frame&)> fourth = [&](const protocol::Frame& frame) {
      return is_output(frame) && std::get<protocol::TaskOutput>(frame.payload).chunk.seq == 4;
    };
    const protocol::Frame refused = co_await frame_where(*world.hub, fourth);
    protocol::ErrorFrame mismatch;
    mismatch.code = "output_offset_mismatch";
    mismatch.message = "scripted refusal";
    mismatch.retryable = false;
    mismatch.related_message_id = refused.message_id;
    mismatch.attempt_id = attempt;
    mismatch.stream = StreamName::kStdout;
    mismatch.highest_accepted_seq = 3;
    // Where seq 4 starts (the chunker cuts near 4096, never inside a UTF-8
    // sequence of the random bytes).
    const uint64_t from = std::get<protocol::TaskOutput>(refused.payload).chunk.offset;
    mismatch.next_offset = from;
    world.hub->send(mismatch);
    world.hub->send(output_ack(attempt, 3));
    const bool logged = co_await world.agent.wait_for_log(
        "the hub refused t-2-a1:stdout:4 for good (output_offset_mismatch)", 10'000);
    CHECK(logged);
    // The final comes, and says how much of stdout did not arrive.
    std::function<bool(const protocol::Frame&)> final_or_late = [&](const protocol::Frame& frame) {
      if (is_output(frame)) {
        // Nothing past the refused frame goes out again.
        CHECK(std::get<protocol::TaskOutput>(frame.payload).chunk.seq < 4);
      }
      return std::holds_alternative<protocol::TaskFinal>(frame.payload);
    };
    const protocol::Frame final_frame = co_await frame_where(*world.hub, final_or_late);
    const auto& report = std::get<protocol::TaskFinal>(final_frame.payload).report;
    CHECK(report.stdout_summary.bytes == 8 * 4096);
    CHECK(report.stdout_summary.undelivered_bytes == 8 * 4096 - from);
    CHECK(report.stdout_summary.dropped_bytes == 8 * 4096 - from);
    CHECK_THAT(report.error, Catch::Contains("stdout could not be delivered from seq 4"));
    CHECK(sqlite_query(world.agent.outbox_path(),
                       "SELECT count(*) FROM frames WHERE attempt_id = 't-2-a1' AND seq >= 4") ==
          "0");
  });
}

TEST_CASE("the send window bounds what is in flight without acks", "[agent][scripted]") {
  ScriptedWorld world;
  world.agent.set("chunk_bytes", "4096");
  world.agent.set("send_window_bytes", "65536");
  world.run([&]() -> core::Co<void> {
    auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(poll.has_value());
    poll->exchange->respond(
        core::json_response(200, task_body("t-3", writer_command({"random", "43", "300000"}))));
    const std::string attempt = "t-3-a1";

    uint64_t delivered = 0;
    uint64_t highest_seq = 0;
    uint64_t windows = 0;
    bool finished = false;
    while (!finished) {
      // Take everything the agent sends until it stops for want of acks...
      const uint64_t before = world.hub->received_bytes();
      uint64_t frames = 0;
      for (;;) {
        auto frame = co_await world.hub->next_frame(500);
        if (!frame) break;
        ++frames;
        if (is_output(*frame)) {
          const auto& chunk = std::get<protocol::TaskOutput>(frame->payload).chunk;
          delivered += chunk.data.size();
          highest_seq = chunk.seq;
        } else if (std::holds_alternative<protocol::TaskStarted>(frame->payload)) {
          world.hub->send(message_ack(*frame, protocol::AckedKind::kStarted, attempt));
        } else if (std::holds_alternative<protocol::TaskFinal>(frame->payload)) {
          world.hub->send(message_ack(*frame, protocol::AckedKind::kFinal, attempt));
          finished = true;
        }
      }
      // ...which is at most the window and the frame that crossed it (the
      // JSON on the wire carries a few bytes the window does not count).
      const uint64_t in_flight = world.hub->received_bytes() - before;
      CHECK(in_flight <= 65536 + 8192 + frames * 64);
      ++windows;
      world.hub->send(output_ack(attempt, highest_seq));
      REQUIRE(windows < 100);
    }
    CHECK(delivered == 300000);
    CHECK(windows >= 5);  // 400 KB of frames through a 64 KiB window: many rounds
  });
}

TEST_CASE("reconnects back off from 0.5 s with jitter while the hub drops the channel at once",
          "[agent][scripted]") {
  ScriptedWorld world;
  world.run([&]() -> core::Co<void> {
    world.hub->set_close_after_hello(true);
    const bool six = co_await world.hub->wait_for_connects(6, 40'000);
    REQUIRE(six);
    const auto& times = world.hub->connect_times();
    uint64_t ceiling = 500;
    uint64_t total = 0;
    std::vector<uint64_t> gaps;
    for (size_t i = 1; i < 6; ++i) {
      const uint64_t gap = times[i] - times[i - 1];
      gaps.push_back(gap);
      total += gap;
      INFO("reconnect " << i << " after " << gap << " ms (ceiling " << ceiling << ")");
      CHECK(gap + 50 >= ceiling / 10);
      CHECK(gap <= ceiling + 1000);  // the ceiling, plus the handshake itself
      ceiling *= 2;
    }
    CHECK(total >= 1500);
    CHECK(std::set<uint64_t>(gaps.begin(), gaps.end()).size() > 1);  // jittered
  });
}

TEST_CASE("a hub answering 204 at once is polled about once a second, not thousands of times",
          "[agent][scripted]") {
  ScriptedWorld world;
  world.run([&]() -> core::Co<void> {
    std::vector<uint64_t> times;
    for (int i = 0; i < 4; ++i) {
      auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
      REQUIRE(poll.has_value());
      times.push_back(poll->at_ms);
      poll->exchange->respond(core::json_response(204, ""));
    }
    for (size_t i = 1; i < times.size(); ++i)
      CHECK(times[i] - times[i - 1] >= 900);
  });
}

TEST_CASE("a dispatch that does not decode is refused with a rejected final naming the field",
          "[agent][scripted]") {
  ScriptedWorld world;
  world.run([&]() -> core::Co<void> {
    auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(poll.has_value());
    poll->exchange->respond(core::json_response(
        200, R"({"task_id":"t-9","attempt_id":"t-9-a1","command":{"argv":[]},"lease_s":60})"));
    std::function<bool(const protocol::Frame&)> is_final = [](const protocol::Frame& frame) {
      return std::holds_alternative<protocol::TaskFinal>(frame.payload);
    };
    const protocol::Frame frame = co_await frame_where(*world.hub, is_final);
    const auto& final_frame = std::get<protocol::TaskFinal>(frame.payload);
    CHECK(final_frame.attempt.attempt_id == "t-9-a1");
    CHECK(final_frame.report.status == protocol::AttemptStatus::kRejected);
    CHECK_THAT(final_frame.report.error, Catch::Contains("argv"));
  });
}

TEST_CASE("a hub of another protocol version: the agent says so, closes with 1002, backs off",
          "[agent][scripted]") {
  ScriptedWorld world;
  world.run([&]() -> core::Co<void> {
    world.hub->set_hello_reply(
        R"({"v":2,"type":"hub.hello_ack","message_id":"h","related_message_id":"x"})");
    const bool closed =
        co_await world.agent.wait_for_log("the hub speaks another protocol version", 10'000);
    REQUIRE(closed);
    auto said = co_await world.hub->next_frame(5000);
    REQUIRE(said.has_value());
    REQUIRE(std::holds_alternative<protocol::ErrorFrame>(said->payload));
    CHECK(std::get<protocol::ErrorFrame>(said->payload).code == "unsupported_version");
    const bool again = co_await world.hub->wait_for_connects(2, 10'000);
    REQUIRE(again);
    CHECK(world.hub->last_close_code() == 1002);
    // Backoff: not a tight loop of reconnects.
    const auto& times = world.hub->connect_times();
    CHECK(times[1] - times[0] >= 50);
  });
}

TEST_CASE("a hub without output.base64 or final.http: neither is used", "[agent][scripted]") {
  ScriptedWorld world;
  world.agent.set("keepalive_s", "2");
  world.run([&]() -> core::Co<void> {
    world.hub->set_capabilities({"output.gap"});
    const bool connected = co_await world.hub->wait_for_connects(1, 10'000);
    REQUIRE(connected);
    auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(poll.has_value());
    poll->exchange->respond(
        core::json_response(200, task_body("t-4", "printf 'caf\\351 \\377ok\\n'")));
    std::function<bool(const protocol::Frame&)> output = [](const protocol::Frame& frame) {
      return is_output(frame);
    };
    const protocol::Frame frame = co_await frame_where(*world.hub, output);
    // Bytes that are not UTF-8 go one '?' each: lengths and offsets hold.
    CHECK(std::get<protocol::TaskOutput>(frame.payload).chunk.data == "caf? ?ok\n");
    // The final is produced; with the channel gone, it waits for the
    // channel instead of going over HTTP.
    world.hub->set_refuse_websocket(true);
    world.hub->close_channel();
    std::function<bool(const protocol::Frame&)> final_frame = [](const protocol::Frame& frame) {
      return std::holds_alternative<protocol::TaskFinal>(frame.payload);
    };
    (void)final_frame;
    const bool produced = co_await world.agent.wait_for_log("t-4-a1 ended", 10'000);
    REQUIRE(produced);
    auto put = co_await world.hub->next_request("/api/v1/attempts/", 3000);
    CHECK_FALSE(put.has_value());
  });
}

TEST_CASE(
    "a hub that answers pings but never acks: the session ends, output flows on, the task "
    "finishes",
    "[agent][scripted]") {
  ScriptedWorld world;
  world.agent.set("keepalive_s", "1");
  world.agent.set("outbox_max_bytes", "1048576");
  world.agent.set("chunk_bytes", "65536");
  world.run([&]() -> core::Co<void> {
    auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
    REQUIRE(poll.has_value());
    // Three times the outbox: under drop-oldest it used to stop on its pipe
    // at half the cap for as long as the hub stayed silent.
    poll->exchange->respond(
        core::json_response(200, task_body("t-5", writer_command({"random", "5", "3000000"}))));
    const bool gave_up = co_await world.agent.wait_for_log("no ack from the hub for", 20'000);
    REQUIRE(gave_up);
    const bool ended = co_await world.agent.wait_for_log("t-5-a1 ended: succeeded", 30'000);
    CHECK(ended);
  });
}

TEST_CASE("the agent sends batches to a hub that lists frames.batch, and only then",
          "[agent][scripted][batch]") {
  for (const bool offered : {true, false}) {
    INFO((offered ? "frames.batch offered" : "frames.batch not offered"));
    ScriptedWorld world;
    world.run([&]() -> core::Co<void> {
      if (!offered) world.hub->set_capabilities({"output.base64", "output.gap", "final.http"});
      const bool connected = co_await world.hub->wait_for_connects(1, 10'000);
      REQUIRE(connected);
      auto poll = co_await world.hub->next_request("/api/v1/agents/edge-1/tasks/next", 10'000);
      REQUIRE(poll.has_value());
      // Both streams at once, as fast as the shell goes: several frames a
      // send turn. (The scripted hub checks that no batch comes unless it
      // listed frames.batch.)
      poll->exchange->respond(core::json_response(
          200, task_body("t-6",
                         "i=0; while [ $i -lt 3000 ]; do echo out $i; echo err $i >&2; "
                         "i=$((i+1)); done")));
      std::function<bool(const protocol::Frame&)> final_frame = [](const protocol::Frame& frame) {
        return std::holds_alternative<protocol::TaskFinal>(frame.payload);
      };
      const protocol::Frame final_seen = co_await frame_where(*world.hub, final_frame);
      const auto& report = std::get<protocol::TaskFinal>(final_seen.payload).report;
      CHECK(report.status == protocol::AttemptStatus::kSucceeded);
      if (offered) {
        CHECK(world.hub->batches() > 0);
      } else {
        CHECK(world.hub->batches() == 0);
      }
    });
  }
}
