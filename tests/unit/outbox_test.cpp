// The agent's outbox on a real SQLite file: commit visibility, cumulative
// acks, the hello summary, both outbox-full policies, crash-recovery state.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/agent_hello.hpp"
#include "agent/outbox.hpp"
#include "agent/result_channel.hpp"
#include "core/run.hpp"
#include "protocol/sha256.hpp"
#include "support.hpp"

using namespace tether;
using namespace tether::agent;
using protocol::StreamName;

namespace {

const protocol::AttemptRef kAttempt{"t-1", "t-1-a1"};

JournaledAttempt record() {
  JournaledAttempt record;
  record.task_id = kAttempt.task_id;
  record.attempt_id = kAttempt.attempt_id;
  record.pid = 4242;
  record.process_group = 4242;
  record.process_start = 99;
  record.boot_id = "boot";
  record.started_at = "2026-11-22T00:00:00.000Z";
  return record;
}

// Runs `body` on a loop with an outbox, letting each turn's writes commit.
template <class Body>
void with_outbox(OutboxOptions options, Body body) {
  test::TempDir dir{"tether-outbox"};
  core::Loop loop;
  options.agent_id = "edge-1";
  auto opened = Outbox::open(loop, dir.path, options);
  REQUIRE(opened.ok());
  auto& outbox = **opened;
  auto scenario = [&]() -> core::Co<void> { co_await body(loop, outbox, dir.path); };
  core::run_to_completion(loop, scenario());
}

// Waits until the turn's transaction has committed.
core::Co<void> committed(Outbox& outbox) {
  const bool notified = co_await outbox.changed().wait(5000);
  REQUIRE(notified);
}

}  // namespace

TEST_CASE("frames are visible to the sender only once committed, in order", "[outbox]") {
  with_outbox({}, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    outbox.record_started(record(), {4242, "2026-11-22T00:00:00.000Z"});
    protocol::Sha256 digest;
    digest.update("hello\n");
    outbox.append_output(kAttempt, {StreamName::kStdout, 1, 0, "hello\n"}, digest);
    CHECK(outbox.frames().committed_after(0, 1 << 20).empty());  // not committed yet
    co_await committed(outbox);
    auto frames = outbox.frames().committed_after(0, 1 << 20);
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].kind == FrameKind::kStarted);
    CHECK(frames[1].kind == FrameKind::kOutput);
    CHECK(frames[1].message_id == "t-1-a1:stdout:1");
    auto decoded = protocol::decode_frame(frames[1].payload);
    REQUIRE(decoded.ok());
    CHECK(std::get<protocol::TaskOutput>(decoded->payload).chunk.data == "hello\n");
    CHECK(decoded->agent_id == "edge-1");
    CHECK(outbox.frames().rows() == 2);
    CHECK(outbox.frames().bytes() == frames[0].payload.size() + frames[1].payload.size());
    CHECK(outbox.frames().committed_after(frames[1].id, 1 << 20).empty());
  });
}

TEST_CASE("everything written in one loop turn is one transaction (group commit)", "[outbox]") {
  with_outbox({}, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    // SQLite's own count: the WAL hook runs once per committed transaction.
    int commits = 0;
    sqlite3_wal_hook(
        outbox.store().database().getHandle(),
        [](void* counter, sqlite3*, const char*, int) {
          ++*static_cast<int*>(counter);
          return SQLITE_OK;
        },
        &commits);
    outbox.record_started(record(), {4242, "2026-11-22T00:00:00.000Z"});
    protocol::Sha256 digest;
    uint64_t offset = 0;
    for (uint64_t seq = 1; seq <= 100; ++seq) {
      const std::string line = "line " + std::to_string(seq) + "\n";
      digest.update(line);
      outbox.append_output(kAttempt, {StreamName::kStdout, seq, offset, line}, digest);
      offset += line.size();
    }
    CHECK(commits == 0);
    co_await committed(outbox);
    CHECK(commits == 1);
    CHECK(outbox.frames().rows() == 101);
    // An ack deletes everything up to it in one statement, one transaction.
    outbox.ack_output(kAttempt.attempt_id, StreamName::kStdout, 60);
    co_await committed(outbox);
    CHECK(commits == 2);
    CHECK(outbox.frames().rows() == 41);
    sqlite3_wal_hook(outbox.store().database().getHandle(), nullptr, nullptr);
  });
}

TEST_CASE("acks are cumulative per stream and the byte count follows", "[outbox]") {
  with_outbox({}, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    outbox.record_started(record(), {4242, ""});
    protocol::Sha256 out;
    protocol::Sha256 err;
    for (uint64_t seq = 1; seq <= 5; ++seq) {
      out.update("o");
      outbox.append_output(kAttempt, {StreamName::kStdout, seq, seq - 1, "o"}, out);
      err.update("e");
      outbox.append_output(kAttempt, {StreamName::kStderr, seq, seq - 1, "e"}, err);
    }
    co_await committed(outbox);
    const uint64_t before = outbox.frames().bytes();
    outbox.ack_output(kAttempt.attempt_id, StreamName::kStdout, 3);
    co_await committed(outbox);
    CHECK(outbox.frames().rows() == 1 + 2 + 5);
    CHECK(outbox.frames().bytes() < before);
    auto held = describe_outbox(outbox, "test");
    REQUIRE(held);
    auto& hello = *held;
    REQUIRE(hello.running.size() == 1);
    REQUIRE(hello.outbox.size() == 2);
    for (const auto& range : hello.outbox) {
      CHECK(range.first_seq == (range.stream == StreamName::kStdout ? 4u : 1u));
      CHECK(range.last_seq == 5u);
    }
    CHECK(hello.outbox_rows == 8u);
    outbox.ack_message(protocol::started_message_id(kAttempt.attempt_id));
    outbox.resume_from(kAttempt.attempt_id, StreamName::kStderr, 6);
    outbox.ack_output(kAttempt.attempt_id, StreamName::kStdout, 5);
    co_await committed(outbox);
    CHECK(outbox.frames().rows() == 0);
    CHECK(outbox.frames().bytes() == 0);
  });
}

TEST_CASE("a final fills in dropped bytes; its ack forgets the attempt", "[outbox]") {
  with_outbox({}, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    outbox.record_started(record(), {4242, ""});
    protocol::FinalReport report;
    report.status = protocol::AttemptStatus::kSucceeded;
    report.exit_code = 0;
    report.stdout_summary = {0, protocol::sha256_hex(""), 0};
    report.stderr_summary = {0, protocol::sha256_hex(""), 0};
    outbox.append_final(kAttempt, report);
    co_await committed(outbox);
    CHECK(outbox.attempts().running_attempts().empty());  // finished, final pending
    auto finals = outbox.frames().finals();
    REQUIRE(finals.size() == 1);
    CHECK(describe_outbox(outbox, "test")->unacked_finals.size() == 1);
    outbox.ack_message(finals[0].message_id);
    co_await committed(outbox);
    CHECK(outbox.frames().finals().empty());
    SQLite::Statement rows(outbox.store().database(), "SELECT COUNT(*) FROM attempts");
    rows.executeStep();
    CHECK(rows.getColumn(0).getInt() == 0);
  });
}

TEST_CASE("drop-oldest turns the attempt's oldest output into gaps, counted exactly", "[outbox]") {
  OutboxOptions options;
  options.max_bytes = 1 << 20;  // 1 MiB, of which 128 KiB are kept for finals
  with_outbox(options, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    outbox.record_started(record(), {4242, ""});
    protocol::Sha256 digest;
    const std::string chunk(64 * 1024, 'x');
    uint64_t offset = 0;
    for (uint64_t seq = 1; seq <= 40; ++seq) {  // 2.5 MiB into a 1 MiB outbox
      digest.update(chunk);
      outbox.append_output(kAttempt, {StreamName::kStdout, seq, offset, chunk}, digest);
      offset += chunk.size();
      CHECK(outbox.frames().bytes() <= (1u << 20));
    }
    co_await committed(outbox);
    const uint64_t dropped =
        outbox.attempts().dropped_bytes(kAttempt.attempt_id, StreamName::kStdout);
    CHECK(dropped > 0);
    // Every seq is still there, as data or as a gap, and the byte ranges add up.
    auto frames = outbox.frames().committed_after(0, 1ull << 40);
    uint64_t gap_bytes = 0;
    uint64_t data_bytes = 0;
    uint64_t expect_seq = 1;
    uint64_t expect_offset = 0;
    for (const auto& frame : frames) {
      if (frame.kind == FrameKind::kStarted) continue;
      auto decoded = protocol::decode_frame(frame.payload);
      REQUIRE(decoded.ok());
      CHECK(frame.seq == expect_seq++);
      if (auto* gap = std::get_if<protocol::TaskOutputGap>(&decoded->payload)) {
        CHECK(gap->offset == expect_offset);
        expect_offset += gap->length;
        gap_bytes += gap->length;
      } else {
        const auto& output = std::get<protocol::TaskOutput>(decoded->payload);
        CHECK(output.chunk.offset == expect_offset);
        expect_offset += output.chunk.data.size();
        data_bytes += output.chunk.data.size();
      }
    }
    CHECK(expect_seq == 41);
    CHECK(gap_bytes == dropped);
    CHECK(gap_bytes + data_bytes == 40 * chunk.size());
    // The oldest went first: the newest frame is still data.
    CHECK(frames.back().kind == FrameKind::kOutput);
    protocol::FinalReport report;
    report.status = protocol::AttemptStatus::kSucceeded;
    report.exit_code = 0;
    report.stdout_summary = {offset, digest.hex_digest(), 0};
    report.stderr_summary = {0, protocol::sha256_hex(""), 0};
    outbox.append_final(kAttempt, report);
    co_await committed(outbox);
    auto final_frame = protocol::decode_frame(outbox.frames().finals().at(0).payload);
    REQUIRE(final_frame.ok());
    CHECK(std::get<protocol::TaskFinal>(final_frame->payload).report.stdout_summary.dropped_bytes ==
          dropped);
  });
}

TEST_CASE("block: no room when full, room again after acks", "[outbox]") {
  OutboxOptions options;
  options.max_bytes = 1 << 20;
  options.policy = OutboxFullPolicy::kBlock;
  with_outbox(options, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    outbox.record_started(record(), {4242, ""});
    protocol::Sha256 digest;
    const std::string chunk(64 * 1024, 'y');
    uint64_t seq = 0;
    while (outbox.budget().has_room(chunk.size() * 2 + 512)) {
      ++seq;
      outbox.append_output(kAttempt, {StreamName::kStdout, seq, (seq - 1) * chunk.size(), chunk},
                           digest);
    }
    co_await committed(outbox);
    CHECK(seq >= 10);
    CHECK(outbox.attempts().dropped_bytes(kAttempt.attempt_id, StreamName::kStdout) == 0);
    CHECK_FALSE(outbox.budget().has_room(chunk.size() * 2 + 512));
    outbox.ack_output(kAttempt.attempt_id, StreamName::kStdout, seq);
    const bool room = co_await outbox.budget().room().wait(5000);
    CHECK(room);
    CHECK(outbox.budget().has_room(chunk.size() * 2 + 512));
  });
}

TEST_CASE("a reopened outbox knows its running attempts, bytes and digests", "[outbox]") {
  test::TempDir dir{"tether-outbox"};
  protocol::Sha256 digest;
  {
    core::Loop loop;
    auto outbox = Outbox::open(loop, dir.path, {});
    REQUIRE(outbox.ok());
    auto scenario = [&]() -> core::Co<void> {
      (*outbox)->record_started(record(), {4242, ""});
      digest.update("first ");
      (*outbox)->append_output(kAttempt, {StreamName::kStdout, 1, 0, "first "}, digest);
      digest.update("second");
      (*outbox)->append_output(kAttempt, {StreamName::kStdout, 2, 6, "second"}, digest);
      co_await committed(**outbox);
    };
    core::run_to_completion(loop, scenario());
  }  // "crash": the process state is gone, the file stays
  core::Loop loop;
  auto reopened = Outbox::open(loop, dir.path, {});
  REQUIRE(reopened.ok());
  CHECK((*reopened)->frames().rows() == 3);
  auto running = (*reopened)->attempts().running_attempts();
  REQUIRE(running.size() == 1);
  CHECK(running[0].pid == 4242);
  CHECK(running[0].process_start == 99u);
  CHECK(running[0].out.bytes == 12);
  auto restored = protocol::Sha256::restore(running[0].out.digest_state);
  REQUIRE(restored.ok());
  CHECK(restored->hex_digest() == protocol::sha256_hex("first second"));
  CHECK((*reopened)->frames().committed_after(0, 1 << 20).size() == 3);
}

namespace {

uint64_t file_size(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return error ? 0 : size;
}

int64_t count_rows(Outbox& outbox, const char* sql) {
  SQLite::Statement query(outbox.store().database(), sql);
  REQUIRE(query.executeStep());
  return query.getColumn(0).getInt64();
}

}  // namespace

TEST_CASE("resending an unacked backlog records the sends without writing the frames again",
          "[outbox]") {
  with_outbox({}, [](core::Loop&, Outbox& outbox, const std::string& dir) -> core::Co<void> {
    outbox.record_started(record(), {4242, ""});
    protocol::Sha256 digest;
    const std::string piece(256 * 1024, 'x');
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      digest.update(piece);
      outbox.append_output(kAttempt, {StreamName::kStdout, seq, (seq - 1) * piece.size(), piece},
                           digest);
    }
    co_await committed(outbox);
    const auto frames = outbox.frames().committed_after(0, 1 << 30);
    REQUIRE(frames.size() == 4);
    outbox.store().database().exec("PRAGMA wal_checkpoint(TRUNCATE)");
    REQUIRE(file_size(dir + "/outbox.db-wal") == 0);
    // Three sends of the whole backlog (a reconnect replays it each time).
    for (int send = 0; send < 3; ++send) {
      outbox.sends().mark_sent(frames.front().id, frames.back().id);
      if (send == 0) co_await committed(outbox);  // how far sending got, at once
      co_await committed(outbox);                 // the per-frame marks, a second later
    }
    CHECK(outbox.sends().sent_through_id() == frames.back().id);
    // 768 KiB of payload: rewriting the rows would put it in the WAL 3 times.
    CHECK(file_size(dir + "/outbox.db-wal") < 128 * 1024);
    CHECK(count_rows(outbox,
                     "SELECT count(*) FROM frame_sends WHERE send_count = 3 AND "
                     "last_sent_at LIKE '____-__-__T__:__:__.___Z'") == 4);
    // The marks go with the frames.
    outbox.ack_output(kAttempt.attempt_id, StreamName::kStdout, 3);
    co_await committed(outbox);
    CHECK(count_rows(outbox, "SELECT count(*) FROM frame_sends") == 1);  // the started frame
  });
}

TEST_CASE("an outbox of schema version 1 is upgraded with its send marks; a newer one is refused",
          "[outbox]") {
  test::TempDir dir{"tether-outbox"};
  const std::string path = dir.path + "/outbox.db";
  {
    core::Loop loop;
    auto outbox = Outbox::open(loop, dir.path, {});
    REQUIRE(outbox.ok());
    auto scenario = [&]() -> core::Co<void> {
      (*outbox)->record_started(record(), {4242, ""});
      protocol::Sha256 digest;
      digest.update("kept");
      (*outbox)->append_output(kAttempt, {StreamName::kStdout, 1, 0, "kept"}, digest);
      co_await committed(**outbox);
    };
    core::run_to_completion(loop, scenario());
  }
  {
    // Back to version 1 as an older agent left it: the send marks were
    // columns of frames, and no send_progress mark was recorded yet.
    SQLite::Database v1(path, SQLite::OPEN_READWRITE);
    v1.exec("DROP TABLE frame_sends");
    v1.exec("ALTER TABLE frames ADD COLUMN last_sent_at TEXT");
    v1.exec("ALTER TABLE frames ADD COLUMN send_count INTEGER NOT NULL DEFAULT 0");
    v1.exec(
        "UPDATE frames SET last_sent_at = '2026-11-22T00:00:01.000Z', send_count = 2 "
        "WHERE kind = 'started'");
    v1.exec("DELETE FROM send_progress");
    v1.exec("ALTER TABLE attempts DROP COLUMN stdout_undelivered_bytes");
    v1.exec("ALTER TABLE attempts DROP COLUMN stderr_undelivered_bytes");
    v1.exec("ALTER TABLE attempts DROP COLUMN command_start");
    v1.exec("UPDATE schema_version SET version = 1");
  }
  {
    core::Loop loop;
    auto outbox = Outbox::open(loop, dir.path, {});
    REQUIRE(outbox.ok());
    CHECK((*outbox)->frames().rows() == 2);
    CHECK(count_rows(**outbox, "SELECT version FROM schema_version") == 3);
    CHECK(count_rows(**outbox,
                     "SELECT count(*) FROM pragma_table_info('frames') WHERE name IN "
                     "('last_sent_at', 'send_count')") == 0);
    CHECK(count_rows(**outbox,
                     "SELECT send_count FROM frame_sends JOIN frames ON frame_id = id "
                     "WHERE kind = 'started' AND "
                     "last_sent_at = '2026-11-22T00:00:01.000Z'") == 2);
    // The started frame was sent, so drop-oldest must leave it alone.
    CHECK(count_rows(**outbox, "SELECT count(*) FROM frames") == 2);
    const auto frames = (*outbox)->frames().committed_after(0, 1 << 20);
    REQUIRE(frames.size() == 2);
    CHECK((*outbox)->sends().sent_through_id() == frames[0].id);
  }
  {
    SQLite::Database newer(path, SQLite::OPEN_READWRITE);
    newer.exec("UPDATE schema_version SET version = 4");
  }
  core::Loop loop;
  auto refused = Outbox::open(loop, dir.path, {});
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message,
             Catch::Contains("schema version 4") && Catch::Contains("understands version 3"));
  SQLite::Database after(path, SQLite::OPEN_READONLY);
  CHECK(after.execAndGet("SELECT version FROM schema_version").getInt() == 4);
  CHECK(after.execAndGet("SELECT count(*) FROM frames").getInt() == 2);
}

TEST_CASE("a write the disk cannot take stops the agent; what was committed stays", "[outbox]") {
  test::TempDir dir{"tether-outbox"};
  {
    core::Loop loop;
    auto outbox = Outbox::open(loop, dir.path, {});
    REQUIRE(outbox.ok());
    auto scenario = [&]() -> core::Co<void> {
      (*outbox)->record_started(record(), {4242, ""});
      protocol::Sha256 digest;
      digest.update("kept");
      (*outbox)->append_output(kAttempt, {StreamName::kStdout, 1, 0, "kept"}, digest);
      co_await committed(**outbox);
    };
    core::run_to_completion(loop, scenario());
  }
  const std::string log_path = dir.path + "/child.log";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // A failing disk without root: past RLIMIT_FSIZE a write fails (EFBIG;
    // SQLite says "disk I/O error" where ENOSPC gives "database or disk is
    // full"). Both take the same path.
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(log, 2);
    ::signal(SIGXFSZ, SIG_IGN);
    core::Loop loop;
    auto outbox = Outbox::open(loop, dir.path, {});
    if (!outbox.ok()) std::_Exit(3);
    const rlimit limit{1 << 20, 1 << 20};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    auto scenario = [&]() -> core::Co<void> {
      protocol::Sha256 digest;
      digest.update("kept");
      const std::string piece(64 * 1024, 'y');
      for (uint64_t seq = 2; seq <= 64; ++seq) {
        digest.update(piece);
        (*outbox)->append_output(
            kAttempt, {StreamName::kStdout, seq, 4 + (seq - 2) * piece.size(), piece}, digest);
      }
      co_await committed(**outbox);
    };
    core::run_to_completion(loop, scenario());
    std::_Exit(4);  // it was stored after all: the limit did not bite
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  std::ifstream log(log_path);
  std::stringstream text;
  text << log.rdbuf();
  INFO(text.str());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(text.str(), Catch::Contains("storing a frame failed: disk I/O error") &&
                             Catch::Contains("exiting; a restart recovers"));
  // The restart finds what was committed before, and none of the lost turn.
  core::Loop loop;
  auto reopened = Outbox::open(loop, dir.path, {});
  REQUIRE(reopened.ok());
  CHECK((*reopened)->frames().rows() == 2);
  auto running = (*reopened)->attempts().running_attempts();
  REQUIRE(running.size() == 1);
  CHECK(running[0].out.bytes == 4);
}

TEST_CASE("multi-byte UTF-8 output is counted in bytes, stored and acked alike", "[outbox]") {
  with_outbox({}, [](core::Loop&, Outbox& outbox, const std::string&) -> core::Co<void> {
    // SQLite's length() counts characters of TEXT: 1000 of these are 2000
    // bytes. Counting one way and discounting the other once let the total
    // creep up with every acked frame until a block-policy outbox stalled.
    std::string text;
    for (int i = 0; i < 1000; ++i)
      text += "\xC3\xA9";
    outbox.record_started(record(), {4242, ""});
    co_await committed(outbox);
    outbox.ack_message(outbox.frames().committed_after(0, 1 << 20).front().message_id);
    co_await committed(outbox);
    REQUIRE(outbox.frames().bytes() == 0);
    protocol::Sha256 digest;
    digest.update(text);
    outbox.append_output(kAttempt, {StreamName::kStdout, 1, 0, text}, digest);
    co_await committed(outbox);
    const auto frames = outbox.frames().committed_after(0, 1 << 20);
    REQUIRE(frames.size() == 1);
    CHECK(outbox.frames().bytes() == frames[0].payload.size());
    CHECK(count_rows(outbox, "SELECT sum(length(CAST(payload AS BLOB))) FROM frames") ==
          static_cast<int64_t>(frames[0].payload.size()));
    outbox.ack_output(kAttempt.attempt_id, StreamName::kStdout, 1);
    co_await committed(outbox);
    CHECK(outbox.frames().rows() == 0);
    CHECK(outbox.frames().bytes() == 0);
  });
}

TEST_CASE("a hello that would not fit one message is cut and marked partial", "[outbox]") {
  protocol::AgentHello hello;
  hello.version = "test";
  for (int i = 0; i < 30'000; ++i) {
    const std::string id = "t-" + std::to_string(i);
    hello.outbox.push_back({{id, id + "-a1"}, StreamName::kStdout, 1, 2});
    hello.unacked_finals.push_back({id, id + "-a1"});
  }
  protocol::Frame frame;
  frame.message_id = "hello:edge-1:1";
  frame.agent_id = "edge-1";
  frame.payload = hello;
  const std::string text = fitted_hello(frame);
  CHECK(text.size() <= protocol::kMaxFrameBytes);
  auto decoded = protocol::decode_frame(text);
  REQUIRE(decoded.ok());
  const auto& fitted = std::get<protocol::AgentHello>(decoded->payload);
  CHECK(fitted.partial);
  CHECK(fitted.outbox.size() < hello.outbox.size());

  protocol::Frame small = frame;
  std::get<protocol::AgentHello>(small.payload).outbox.resize(3);
  std::get<protocol::AgentHello>(small.payload).unacked_finals.resize(3);
  auto whole = protocol::decode_frame(fitted_hello(small));
  REQUIRE(whole.ok());
  CHECK_FALSE(std::get<protocol::AgentHello>(whole->payload).partial);
}
