// End to end under faults: the hub or the agent killed mid-stream, the
// connection reset or blackholed by a TCP proxy, WebSocket refused while HTTP
// works, a wrong token, a full outbox. After each, the hub must hold exactly
// what the task wrote (or, where the outbox had to drop, exactly what the
// final says was dropped) and exactly one final per attempt.
#include <signal.h>

#include <fstream>
#include <regex>
#include <sstream>

#include <filesystem>

#include "agent_world.hpp"
#include "core/timer.hpp"
#include "protocol/sha256.hpp"

using namespace tether;
using namespace tether::test;

namespace {

// Checks a finished task against what the generator wrote: the final's
// counts and digests, the bytes the hub serves, and one final event.
core::Co<void> expect_delivered(AgentWorld& world, std::string id, FinalView final_view,
                                std::vector<std::string> writer_args) {
  const Digest expected = generated_digest(writer_args);
  CHECK(final_view.out.bytes == expected.bytes);
  CHECK(final_view.out.sha256 == expected.sha256);
  CHECK(final_view.out_dropped == 0);
  CHECK(final_view.verified);
  CHECK(final_view.verification_error.empty());
  const std::string stored = co_await world.op().output(id, "stdout");
  CHECK(stored.size() == expected.bytes);
  CHECK(protocol::sha256_hex(stored) == expected.sha256);
  CHECK(world.final_events(id) == 1);
}

// A paced writer: `megabytes` MB in 8 KiB pieces every 4 ms (about 2 MB/s),
// so faults land mid-stream.
std::vector<std::string> paced_args(int seed, int megabytes) {
  return {"paced", std::to_string(seed), "8192", std::to_string(megabytes * 128), "4"};
}

// Waits `ms` of wall time. Only for observing that something does NOT happen
// during a window (a wrong token must not make the agent hammer the hub);
// never to wait for something to happen.
core::Co<void> observe_for(core::Loop& loop, uint64_t ms) {
  auto waited = co_await core::sleep_for(loop, ms);
  (void)waited;
}

// The SQL blocks of docs/operations.md, by their first comment line.
std::map<std::string, std::string> documented_queries() {
  std::ifstream file(env_path("TETHER_SOURCE_DIR") + "/docs/operations.md");
  REQUIRE(file.good());
  std::stringstream text;
  text << file.rdbuf();
  std::map<std::string, std::string> queries;
  static const std::regex block("```sql\n-- ([^\n]+)\n([^`]+)```");
  const std::string doc = text.str();
  for (std::sregex_iterator it(doc.begin(), doc.end(), block), end; it != end; ++it) {
    queries[(*it)[1]] = (*it)[2];
  }
  return queries;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator))
    parts.push_back(part);
  return parts;
}

// Refuses WebSocket at the proxy and cuts the live channel: from here the
// agent reaches the hub over HTTP only.
core::Co<void> take_channel_down(AgentWorld& world) {
  const size_t from = world.agent.log().size();
  world.proxy->set_refuse_websocket(true);
  world.proxy->reset_all();
  const bool refused =
      co_await world.agent.wait_for_log("cannot open the result channel", 20'000, from);
  REQUIRE(refused);
}

}  // namespace

TEST_CASE("the hub killed with SIGKILL mid-stream and restarted: nothing lost or doubled",
          "[agent][e2e][outage]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const auto args = paced_args(11, 12);
    const std::string id = co_await world.submit_shell(writer_command(args));
    const bool streaming = co_await world.op().wait_for_output(id, "stdout", 1 << 20, 30'000);
    REQUIRE(streaming);
    const size_t from = world.agent.log().size();
    co_await world.hub.stop(SIGKILL);
    const bool noticed = co_await world.agent.wait_for_log("result channel closed", 10'000, from);
    REQUIRE(noticed);
    co_await world.hub.start();
    const bool back = co_await world.agent.wait_for_log("connected to", 30'000, from);
    REQUIRE(back);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 120'000);
    CHECK(final_view.exit_code == 0);
    co_await expect_delivered(world, id, final_view, args);
  });
}

TEST_CASE(
    "the agent killed with SIGKILL mid-stream and restarted: the outbox is delivered, "
    "the final is lost with counts, the task dies with the agent",
    "[agent][e2e][outage]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const auto args = paced_args(13, 40);
    const std::string id = co_await world.submit_shell(writer_command(args) + "; sleep 600");
    const bool streaming = co_await world.op().wait_for_output(id, "stdout", 1 << 20, 30'000);
    REQUIRE(streaming);
    const int code = co_await world.agent.stop(SIGKILL);
    CHECK(code == 128 + SIGKILL);

    // What the outbox holds now is what must reach the hub.
    const auto row = split(sqlite_query(world.agent.outbox_path(),
                                        "SELECT process_group, stdout_bytes, state FROM attempts"),
                           '|');
    REQUIRE(row.size() == 3);
    const int group = std::stoi(row[0]);
    const uint64_t in_outbox = std::stoull(row[1]);
    CHECK(row[2] == "running");
    CHECK(in_outbox >= (1u << 20));
    // The task does not outlive its agent: its init kills it.
    CHECK(group_dies(group, 10'000));

    co_await world.agent.start();
    const FinalView final_view = co_await world.final_of(id, "lost", 60'000);
    CHECK(final_view.status == "lost");
    CHECK(final_view.error.find("agent restarted") != std::string::npos);
    CHECK(final_view.out.bytes == in_outbox);
    CHECK(final_view.verified);
    // The bytes are the generator's, in order, up to where the agent died.
    const std::string stored = co_await world.op().output(id, "stdout");
    REQUIRE(stored.size() == in_outbox);
    const std::string full =
        generated({"paced", "13", "8192", std::to_string(in_outbox / 8192 + 1), "0"});
    CHECK(stored == full.substr(0, in_outbox));
    CHECK(protocol::sha256_hex(stored) == final_view.out.sha256);
    CHECK(world.final_events(id) == 1);
  });
}

TEST_CASE("agent and task init killed together: the restarted agent kills the leftover group",
          "[agent][e2e][outage]") {
  AgentWorld world;
  world.run([&]() -> core::Co<void> {
    const std::string id = co_await world.submit_shell("echo ready; sleep 600");
    const bool running = co_await world.op().wait_for_output(id, "stdout", 6, 30'000);
    REQUIRE(running);
    const auto row = split(
        sqlite_query(world.agent.outbox_path(), "SELECT process_group, pid FROM attempts"), '|');
    REQUIRE(row.size() == 2);
    const int group = std::stoi(row[0]);
    // As when everything of the agent is killed at once (the OOM killer, a
    // unit's SIGKILL): the init is stopped first so that it cannot clean up.
    REQUIRE(::kill(group, SIGSTOP) == 0);
    (void)co_await world.agent.stop(SIGKILL);
    REQUIRE(::kill(group, SIGKILL) == 0);
    CHECK_FALSE(living_members(group).empty());  // the command is left over

    co_await world.agent.start();
    const FinalView final_view = co_await world.final_of(id, "lost", 60'000);
    CHECK(final_view.status == "lost");
    CHECK(group_dies(group, 10'000));
    CHECK(world.agent.log().find("killed the leftover process group " + row[0]) !=
          std::string::npos);
  });
}

TEST_CASE("connections reset by a middlebox: the agent reconnects and resumes",
          "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.run([&]() -> core::Co<void> {
    const auto args = paced_args(17, 12);
    const std::string id = co_await world.submit_shell(writer_command(args));
    const bool first = co_await world.op().wait_for_output(id, "stdout", 1 << 20, 30'000);
    REQUIRE(first);
    world.proxy->reset_all();
    const bool second = co_await world.op().wait_for_output(id, "stdout", 4 << 20, 60'000);
    REQUIRE(second);
    world.proxy->reset_all();
    const FinalView final_view = co_await world.final_of(id, "succeeded", 120'000);
    co_await expect_delivered(world, id, final_view, args);
    CHECK(world.agent.process().count_in_log("connected to") >= 3);
  });
}

TEST_CASE("a blackholed link (no RST): ping finds the dead peer, the agent reconnects",
          "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.agent.set("keepalive_s", "1");  // dead after 3 s of silence
  world.run([&]() -> core::Co<void> {
    const auto args = paced_args(19, 12);
    const std::string id = co_await world.submit_shell(writer_command(args));
    const bool streaming = co_await world.op().wait_for_output(id, "stdout", 1 << 20, 30'000);
    REQUIRE(streaming);
    const size_t from = world.agent.log().size();
    world.loop.update_time();
    const uint64_t cut_at = world.loop.now_ms();
    world.proxy->set_blackhole(true);
    const bool noticed = co_await world.agent.wait_for_log("result channel closed", 30'000, from);
    REQUIRE(noticed);
    world.loop.update_time();
    WARN("dead peer noticed after " << world.loop.now_ms() - cut_at << " ms (keepalive_s 1)");
    world.proxy->set_blackhole(false);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 120'000);
    co_await expect_delivered(world, id, final_view, args);
  });
}

TEST_CASE("WebSocket refused while HTTP works: finals go over HTTP, output follows the channel",
          "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.run([&]() -> core::Co<void> {
    co_await take_channel_down(world);

    // No output: the final alone completes the attempt, over HTTP.
    const std::string quiet = co_await world.submit_shell("exit 0");
    const FinalView quiet_final = co_await world.final_of(quiet, "succeeded", 60'000);
    CHECK(quiet_final.verified);
    // The hub may show the final before the agent has read the 200.
    const bool over_http =
        co_await world.agent.wait_for_log("final of " + quiet + "-a1 delivered over HTTP", 10'000);
    CHECK(over_http);
    CHECK(world.final_events(quiet) == 1);

    // With output: the hub answers 409 until the output is there.
    const std::vector<std::string> args = {"random", "21", "300000"};
    const std::string noisy = co_await world.submit_shell(writer_command(args));
    const bool waiting =
        co_await world.agent.wait_for_log("wants more output before the final of " + noisy, 60'000);
    REQUIRE(waiting);
    const std::string state = co_await world.op().state_of(noisy);
    CHECK(state != "succeeded");
    CHECK(world.proxy->websocket_upgrades_refused() > 0);

    world.proxy->set_refuse_websocket(false);
    const FinalView final_view = co_await world.final_of(noisy, "succeeded", 60'000);
    co_await expect_delivered(world, noisy, final_view, args);
  });
}

TEST_CASE("a wrong token: logged clearly, once, and the hub is not hammered",
          "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  const std::string wrong = "tether_wrongwrongwrongwrongwrongwrong";
  world.agent.set_token(wrong);
  world.run([&]() -> core::Co<void> {
    const bool logged = co_await world.agent.wait_for_log("refused this agent's token", 20'000);
    REQUIRE(logged);
    const uint64_t before = world.proxy->connections();
    co_await observe_for(world.loop, 6000);
    const uint64_t attempts = world.proxy->connections() - before;
    // Poll and channel back off (1 s and 0.5 s, doubling): a handful of
    // tries in 6 s. A loop without backoff would make hundreds.
    CHECK(attempts >= 2);
    CHECK(attempts <= 20);
    // At most once a minute from each of the poller and the channel.
    CHECK(world.agent.process().count_in_log("refused this agent's token") <= 2);
    CHECK(world.agent.log().find(wrong) == std::string::npos);
    CHECK(world.agent.log().find("check token_file") != std::string::npos);
    CHECK(world.agent.process().running());
  });
}

TEST_CASE("outbox full, drop-oldest: the oldest output becomes gaps, counted exactly",
          "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.agent.set("outbox_max_bytes", "1048576");
  world.run([&]() -> core::Co<void> {
    co_await take_channel_down(world);
    const std::vector<std::string> args = {"random", "23", "4000000"};
    const std::string id = co_await world.submit_shell(writer_command(args));
    // The task ends, its final goes over HTTP and waits for the output.
    const bool waiting =
        co_await world.agent.wait_for_log("wants more output before the final of " + id, 60'000);
    REQUIRE(waiting);
    CHECK(world.agent.log().find("dropping the oldest unsent output of " + id) !=
          std::string::npos);
    world.proxy->set_refuse_websocket(false);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 60'000);

    const std::string written = generated(args);
    CHECK(final_view.out.bytes == written.size());
    CHECK(final_view.out.sha256 == protocol::sha256_hex(written));
    CHECK(final_view.out_dropped > 0);
    CHECK_FALSE(final_view.verified);
    CHECK(final_view.verification_error.find("dropped") != std::string::npos);

    // The hub's record of the stream: pieces and gaps that tile it exactly,
    // gaps adding up to what the final says was dropped, and every stored
    // byte where the generator wrote it.
    const std::string rows = sqlite_query(
        world.hub_db(), "SELECT kind, byte_offset, length FROM events WHERE task_id = '" + id +
                            "' AND stream = 'stdout' ORDER BY seq");
    uint64_t offset = 0;
    uint64_t gap_bytes = 0;
    std::string expected_stored;
    for (const auto& line : split(rows, '\n')) {
      const auto fields = split(line, '|');
      REQUIRE(fields.size() == 3);
      const uint64_t at = std::stoull(fields[1]);
      const uint64_t length = std::stoull(fields[2]);
      CHECK(at == offset);
      if (fields[0] == "gap") {
        gap_bytes += length;
      } else {
        expected_stored += written.substr(at, length);
      }
      offset = at + length;
    }
    CHECK(offset == written.size());
    CHECK(gap_bytes == final_view.out_dropped);
    const std::string stored = co_await world.op().output(id, "stdout");
    CHECK(stored.size() + final_view.out_dropped == written.size());
    CHECK(stored == expected_stored);
    CHECK(world.final_events(id) == 1);
  });
}

TEST_CASE("drop-oldest with the hub taking frames: a fast task is paced, nothing is dropped",
          "[agent][e2e][outage]") {
  // A 1 MiB outbox and 8 MB written as fast as a pipe allows: more than the
  // outbox holds at any moment. While the channel is up the agent stops
  // reading at half the cap until acks make room, so the task runs at the
  // hub's pace and every byte arrives.
  AgentWorld world;
  world.agent.set("outbox_max_bytes", "1048576");
  world.run([&]() -> core::Co<void> {
    const std::vector<std::string> args = {"random", "29", "8000000"};
    const std::string id = co_await world.submit_shell(writer_command(args));
    const FinalView final_view = co_await world.final_of(id, "succeeded", 120'000);
    const Digest written = generated_digest(args);
    CHECK(final_view.out.bytes == written.bytes);
    CHECK(final_view.out.sha256 == written.sha256);
    CHECK(final_view.out_dropped == 0);
    CHECK(final_view.verified);
    CHECK(world.agent.log().find("dropping the oldest") == std::string::npos);
  });
}

TEST_CASE("drop-oldest at start: a task polled while the channel is still opening is paced",
          "[agent][e2e][outage]") {
  // At start the poll and the channel race. Here the channel's upgrade waits
  // at the proxy while polls pass, so the task runs and writes 8 MB into a
  // 1 MiB outbox before the channel is open. Until the first channel opens
  // or fails, the reader pauses at half the cap instead of dropping; once
  // the channel opens, every byte arrives.
  AgentWorldOptions options = through_proxy();
  options.start_agent = false;
  AgentWorld world(options);
  world.agent.set("outbox_max_bytes", "1048576");
  world.run([&]() -> core::Co<void> {
    world.proxy->set_hold_websocket(true);
    co_await world.agent.start();
    const std::vector<std::string> args = {"random", "31", "8000000"};
    const std::string id = co_await world.submit_shell(writer_command(args));
    const bool received = co_await world.agent.wait_for_log("poller: received " + id, 30'000);
    REQUIRE(received);
    // The task has filled the outbox as far as it may (or, before the fix,
    // past the cap: output dropped).
    const std::string outbox = world.agent.outbox_path();
    const std::string sum = "SELECT coalesce(sum(length), 0) FROM frames";
    for (int i = 0; i < 600 && std::stoull(sqlite_query(outbox, sum)) < 300'000 &&
                    world.agent.log().find("dropping the oldest") == std::string::npos;
         ++i) {
      auto waited = co_await core::sleep_for(world.loop, 50);
      REQUIRE(waited.ok());
    }
    CHECK(world.proxy->websocket_upgrades_held() >= 1);
    CHECK(world.agent.log().find("channel: connected") == std::string::npos);
    world.proxy->set_hold_websocket(false);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 120'000);
    const Digest written = generated_digest(args);
    CHECK(final_view.out.bytes == written.bytes);
    CHECK(final_view.out.sha256 == written.sha256);
    CHECK(final_view.out_dropped == 0);
    CHECK(final_view.verified);
    CHECK(world.agent.log().find("dropping the oldest") == std::string::npos);
  });
}

TEST_CASE("after a large backlog drains, the outbox file shrinks back", "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.run([&]() -> core::Co<void> {
    co_await take_channel_down(world);
    const std::vector<std::string> args = {"random", "31", "24000000"};
    const std::string id = co_await world.submit_shell(writer_command(args));
    const bool waiting =
        co_await world.agent.wait_for_log("wants more output before the final of " + id, 60'000);
    REQUIRE(waiting);
    // The database and its WAL (up to 16 MiB of the backlog may sit there
    // until a checkpoint folds it in).
    const std::string wal = world.agent.outbox_path() + "-wal";
    const auto held = std::filesystem::file_size(world.agent.outbox_path()) +
                      (std::filesystem::exists(wal) ? std::filesystem::file_size(wal) : 0);
    CHECK(held > 24'000'000);  // base64 makes it larger than the output
    world.proxy->set_refuse_websocket(false);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 60'000);
    CHECK(final_view.verified);
    const bool drained = co_await world.agent.wait_for_log("backlog delivered", 30'000);
    REQUIRE(drained);
    // The shrink follows the commit that emptied the outbox; wait for it.
    uint64_t on_disk = held;
    for (int i = 0; i < 200 && on_disk > 1'000'000; ++i) {
      on_disk = std::filesystem::file_size(world.agent.outbox_path()) +
                (std::filesystem::exists(wal) ? std::filesystem::file_size(wal) : 0);
      if (on_disk > 1'000'000) {
        auto waited = co_await core::sleep_for(world.loop, 50);
        (void)waited;
      }
    }
    INFO("outbox held " << held << " bytes; after the drain " << on_disk);
    CHECK(on_disk < 1'000'000);
  });
}

TEST_CASE("outbox full, block: the task waits for room and nothing is lost",
          "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.agent.set("outbox_max_bytes", "1048576");
  world.agent.set("outbox_full_policy", "block");
  world.run([&]() -> core::Co<void> {
    co_await take_channel_down(world);
    const std::vector<std::string> args = {"random", "29", "4000000"};
    const std::string id = co_await world.submit_shell(writer_command(args));
    const bool blocked = co_await world.agent.wait_for_log("waits for the hub's acks", 60'000);
    REQUIRE(blocked);
    // The writer is stuck on a full pipe, not finished.
    const std::string group =
        sqlite_query(world.agent.outbox_path(), "SELECT process_group FROM attempts");
    CHECK_FALSE(living_members(std::stoi(group)).empty());
    const std::string pending =
        sqlite_query(world.agent.outbox_path(),
                     "SELECT coalesce(sum(length(CAST(payload AS BLOB))), 0) FROM frames");
    CHECK(std::stoull(pending) <= 1048576);

    world.proxy->set_refuse_websocket(false);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 120'000);
    co_await expect_delivered(world, id, final_view, args);
    CHECK(world.agent.log().find("flows again") != std::string::npos);
  });
}

TEST_CASE("the queries in docs/operations.md work on a real outbox", "[agent][e2e][outage]") {
  AgentWorld world(through_proxy());
  world.run([&]() -> core::Co<void> {
    const auto queries = documented_queries();
    REQUIRE(queries.size() == 4);
    co_await take_channel_down(world);
    const std::vector<std::string> out_args = {"random", "31", "300000"};
    const std::vector<std::string> err_args = {"utf8", "37", "20000"};
    const std::string id = co_await world.submit_shell(writer_command(out_args) + " && " +
                                                       writer_command(err_args) + " >&2");
    const bool waiting =
        co_await world.agent.wait_for_log("wants more output before the final of " + id, 60'000);
    REQUIRE(waiting);
    const std::string db = world.agent.outbox_path();
    const uint64_t output_bytes = 300000 + generated(err_args).size();

    // backlog per task: task_id | frames | output_bytes | finals | oldest
    const auto backlog = split(sqlite_query(db, queries.at("backlog per task")), '|');
    REQUIRE(backlog.size() == 5);
    CHECK(backlog[0] == id);
    CHECK(std::stoull(backlog[1]) > 2);
    CHECK(std::stoull(backlog[2]) == output_bytes);
    CHECK(backlog[3] == "1");
    static const std::regex utc("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z");
    CHECK(std::regex_match(backlog[4], utc));

    // oldest unacked: the started frame, never acknowledged, with its age.
    const auto oldest = split(sqlite_query(db, queries.at("oldest unacked")), '|');
    REQUIRE(oldest.size() == 9);
    CHECK(oldest[1] == id);
    CHECK(oldest[2] == "started");
    CHECK(oldest[5] == backlog[4]);
    CHECK(std::stoll(oldest[8]) >= 0);

    // bytes pending: frames | output_bytes | dropped_bytes | stored_bytes
    const auto pending = split(sqlite_query(db, queries.at("bytes pending")), '|');
    REQUIRE(pending.size() == 4);
    CHECK(pending[0] == backlog[1]);
    CHECK(std::stoull(pending[1]) == output_bytes);
    CHECK(pending[2] == "0");
    CHECK(std::stoull(pending[3]) > output_bytes);

    // attempts: finished, final not yet acknowledged.
    const auto attempt = split(sqlite_query(db, queries.at("attempts")), '|');
    REQUIRE(attempt.size() == 8);
    CHECK(attempt[1] == id);
    CHECK(attempt[2] == "finished");
    CHECK(std::stoull(attempt[5]) == output_bytes);

    // Delivered: the backlog is empty.
    world.proxy->set_refuse_websocket(false);
    const FinalView final_view = co_await world.final_of(id, "succeeded", 60'000);
    CHECK(final_view.verified);
    const bool drained = co_await world.agent.wait_for_log("backlog delivered", 30'000);
    REQUIRE(drained);
    CHECK(sqlite_query(db, queries.at("backlog per task")).empty());
    CHECK(sqlite_query(db, queries.at("bytes pending")) == "0|0|0|0");
  });
}
