// hub::OutputLedger: the sequence rules of docs/protocol.md section 5
// (classify, record_data, record_gap), what a final still waits for
// (missing) and whether the stored output is what a final describes (verify,
// section 6), and rebuilding from the events table of a real hub.db.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "hub/event_log.hpp"
#include "hub/hub_store.hpp"
#include "hub/output_ledger.hpp"
#include "protocol/sha256.hpp"
#include "support.hpp"

using namespace tether;
using hub::OutputLedger;
using hub::SequenceVerdict;
using hub::StreamLedger;
using protocol::StreamName;

namespace {

// A real hub.db in a temporary directory, with an EventLog and a ledger on it.
struct LedgerFixture {
  test::TempDir dir{"tether-ledger"};
  std::unique_ptr<core::SqliteStore> store = test::open_test_hub_store(dir.path);
  hub::EventLog events{*store};
  OutputLedger ledger{events};
};

const std::string kAttempt = "t-1-a1";
const std::string kEmptySha = protocol::sha256_hex("");

// A final whose streams carry exactly `out` and `err`, nothing dropped.
protocol::FinalReport final_for(const std::string& out, const std::string& err) {
  protocol::FinalReport report;
  report.status = protocol::AttemptStatus::kSucceeded;
  report.exit_code = 0;
  report.stdout_summary.bytes = out.size();
  report.stdout_summary.sha256 = protocol::sha256_hex(out);
  report.stderr_summary.bytes = err.size();
  report.stderr_summary.sha256 = protocol::sha256_hex(err);
  return report;
}

}  // namespace

TEST_CASE("OutputLedger: classify applies the sequence rules of section 5", "[output_ledger]") {
  LedgerFixture f;
  StreamLedger fresh;
  // H = 0, B = 0 before the first frame.
  CHECK(f.ledger.classify(fresh, 1, 0) == SequenceVerdict::kNext);
  CHECK(f.ledger.classify(fresh, 1, 3) == SequenceVerdict::kOffsetMismatch);
  CHECK(f.ledger.classify(fresh, 2, 0) == SequenceVerdict::kGap);
  CHECK(f.ledger.classify(fresh, 0, 0) == SequenceVerdict::kDuplicate);

  StreamLedger ledger;
  f.ledger.record_data(ledger, 1, "hello");
  CHECK(ledger.highest_seq == 1);
  CHECK(ledger.stored_bytes == 5);
  CHECK(ledger.gap_bytes == 0);
  CHECK(ledger.digest.hex_digest() == protocol::sha256_hex("hello"));

  CHECK(f.ledger.classify(ledger, 2, 5) == SequenceVerdict::kNext);
  CHECK(f.ledger.classify(ledger, 2, 4) == SequenceVerdict::kOffsetMismatch);
  CHECK(f.ledger.classify(ledger, 2, 6) == SequenceVerdict::kOffsetMismatch);
  CHECK(f.ledger.classify(ledger, 3, 5) == SequenceVerdict::kGap);
  CHECK(f.ledger.classify(ledger, 1000, 5) == SequenceVerdict::kGap);
  // A duplicate is a duplicate whatever its offset says.
  CHECK(f.ledger.classify(ledger, 1, 0) == SequenceVerdict::kDuplicate);
  CHECK(f.ledger.classify(ledger, 1, 99) == SequenceVerdict::kDuplicate);
}

TEST_CASE("OutputLedger: record_data hashes in order; record_gap counts bytes, not digest",
          "[output_ledger]") {
  LedgerFixture f;
  StreamLedger ledger;
  f.ledger.record_data(ledger, 1, "abc");
  f.ledger.record_gap(ledger, 2, 100);
  CHECK(ledger.highest_seq == 2);
  CHECK(ledger.stored_bytes == 103);  // the next offset counts the gap
  CHECK(ledger.gap_bytes == 100);
  CHECK(ledger.digest.hex_digest() == protocol::sha256_hex("abc"));  // gaps have no bytes
  CHECK(f.ledger.classify(ledger, 3, 103) == SequenceVerdict::kNext);
  CHECK(f.ledger.classify(ledger, 3, 3) == SequenceVerdict::kOffsetMismatch);

  f.ledger.record_data(ledger, 3, "def");
  f.ledger.record_gap(ledger, 4, 7);
  CHECK(ledger.highest_seq == 4);
  CHECK(ledger.stored_bytes == 113);
  CHECK(ledger.gap_bytes == 107);
  CHECK(ledger.digest.hex_digest() == protocol::sha256_hex("abcdef"));
}

TEST_CASE("OutputLedger: stream() is per attempt and stream, and stable", "[output_ledger]") {
  LedgerFixture f;
  StreamLedger& out = f.ledger.stream(kAttempt, StreamName::kStdout);
  StreamLedger& err = f.ledger.stream(kAttempt, StreamName::kStderr);
  StreamLedger& other = f.ledger.stream("t-2-a1", StreamName::kStdout);
  CHECK(&out != &err);
  CHECK(&out != &other);
  CHECK(out.highest_seq == 0);
  CHECK(out.stored_bytes == 0);
  f.ledger.record_data(out, 1, "xyz");
  CHECK(&f.ledger.stream(kAttempt, StreamName::kStdout) == &out);
  CHECK(f.ledger.stream(kAttempt, StreamName::kStdout).stored_bytes == 3);
  CHECK(f.ledger.stream(kAttempt, StreamName::kStderr).stored_bytes == 0);
  CHECK(f.ledger.stream("t-2-a1", StreamName::kStdout).stored_bytes == 0);
}

TEST_CASE("OutputLedger: missing() names what a final reports and the hub lacks",
          "[output_ledger]") {
  LedgerFixture f;
  auto report = final_for("0123456789", "oops");

  SECTION("nothing stored: both streams, stdout first, from seq 1 offset 0") {
    auto missing = f.ledger.missing(kAttempt, report);
    REQUIRE(missing.size() == 2);
    CHECK(missing[0].stream == StreamName::kStdout);
    CHECK(missing[0].from_seq == 1);
    CHECK(missing[0].from_offset == 0);
    CHECK(missing[0].expected_bytes == 10);
    CHECK(missing[1].stream == StreamName::kStderr);
    CHECK(missing[1].from_seq == 1);
    CHECK(missing[1].from_offset == 0);
    CHECK(missing[1].expected_bytes == 4);
  }

  SECTION("part stored: from the next seq and offset") {
    auto& out = f.ledger.stream(kAttempt, StreamName::kStdout);
    f.ledger.record_data(out, 1, "0123");
    f.ledger.record_data(out, 2, "45");
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStderr), 1, "oops");
    auto missing = f.ledger.missing(kAttempt, report);
    REQUIRE(missing.size() == 1);
    CHECK(missing[0].stream == StreamName::kStdout);
    CHECK(missing[0].from_seq == 3);
    CHECK(missing[0].from_offset == 6);
    CHECK(missing[0].expected_bytes == 10);
  }

  SECTION("gap bytes count as stored") {
    auto& out = f.ledger.stream(kAttempt, StreamName::kStdout);
    f.ledger.record_data(out, 1, "0123");
    f.ledger.record_gap(out, 2, 6);
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStderr), 1, "oops");
    report.stdout_summary.dropped_bytes = 6;
    CHECK(f.ledger.missing(kAttempt, report).empty());
  }

  SECTION("undelivered bytes are not waited for") {
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStdout), 1, "0123");
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStderr), 1, "oops");
    report.stdout_summary.dropped_bytes = 6;
    report.stdout_summary.undelivered_bytes = 6;
    CHECK(f.ledger.missing(kAttempt, report).empty());
    // One undelivered byte fewer: one byte is still owed.
    report.stdout_summary.undelivered_bytes = 5;
    auto missing = f.ledger.missing(kAttempt, report);
    REQUIRE(missing.size() == 1);
    CHECK(missing[0].stream == StreamName::kStdout);
    CHECK(missing[0].from_seq == 2);
    CHECK(missing[0].from_offset == 4);
  }

  SECTION("all stored: nothing missing") {
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStdout), 1, "0123456789");
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStderr), 1, "oops");
    CHECK(f.ledger.missing(kAttempt, report).empty());
  }

  SECTION("more stored than reported is not missing (verify flags it)") {
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStdout), 1, "0123456789AB");
    f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStderr), 1, "oops");
    CHECK(f.ledger.missing(kAttempt, report).empty());
  }
}

TEST_CASE("OutputLedger: verify() checks sizes, drops against gaps, SHA-256 and undelivered bytes",
          "[output_ledger]") {
  LedgerFixture f;
  auto& out = f.ledger.stream(kAttempt, StreamName::kStdout);
  auto& err = f.ledger.stream(kAttempt, StreamName::kStderr);

  SECTION("exactly the reported bytes: verified") {
    f.ledger.record_data(out, 1, "hello ");
    f.ledger.record_data(out, 2, "world\n");
    f.ledger.record_data(err, 1, "warn\n");
    const auto result = f.ledger.verify(kAttempt, final_for("hello world\n", "warn\n"));
    CHECK(result.verified);
    CHECK(result.problems.empty());
  }

  SECTION("empty streams verify against the digest of nothing") {
    const auto result = f.ledger.verify(kAttempt, final_for("", ""));
    CHECK(result.verified);
    CHECK(result.problems.empty());
    auto wrong = final_for("", "");
    wrong.stderr_summary.sha256 = "";  // not the digest of nothing
    const auto refused = f.ledger.verify(kAttempt, wrong);
    CHECK_FALSE(refused.verified);
    CHECK(refused.problems == "the SHA-256 of the stored stderr differs from the agent's");
  }

  SECTION("more stored than the final reports") {
    f.ledger.record_data(out, 1, "0123456789AB");
    const auto result = f.ledger.verify(kAttempt, final_for("0123456789", ""));
    CHECK_FALSE(result.verified);
    CHECK(result.problems == "the hub stored 12 bytes of stdout but the final reports 10");
  }

  SECTION("same size, different bytes: SHA-256 mismatch") {
    f.ledger.record_data(out, 1, "hellO\n");
    const auto result = f.ledger.verify(kAttempt, final_for("hello\n", ""));
    CHECK_FALSE(result.verified);
    CHECK(result.problems == "the SHA-256 of the stored stdout differs from the agent's");
  }

  SECTION("dropped bytes matching the gaps: accepted, not verified, no disagreement noted") {
    f.ledger.record_data(out, 1, "abc");
    f.ledger.record_gap(out, 2, 5);
    auto report = final_for("abc", "");
    report.stdout_summary.bytes = 8;
    report.stdout_summary.dropped_bytes = 5;
    const auto result = f.ledger.verify(kAttempt, report);
    CHECK_FALSE(result.verified);
    CHECK(result.problems ==
          "the agent dropped 5 bytes of stdout (outbox full); gap events mark where");
  }

  SECTION("dropped bytes that disagree with the gaps stored") {
    f.ledger.record_data(err, 1, "abc");
    f.ledger.record_gap(err, 2, 5);
    auto report = final_for("", "abc");
    report.stderr_summary.bytes = 10;
    report.stderr_summary.dropped_bytes = 7;
    const auto result = f.ledger.verify(kAttempt, report);
    CHECK_FALSE(result.verified);
    CHECK(result.problems ==
          "the agent dropped 7 bytes of stderr (outbox full); gap events mark where; "
          "the hub recorded 5 bytes of stderr gaps");
  }

  SECTION("gaps stored though the final reports no drops") {
    f.ledger.record_gap(out, 1, 4);
    auto report = final_for("", "");
    report.stdout_summary.bytes = 4;
    const auto result = f.ledger.verify(kAttempt, report);
    CHECK_FALSE(result.verified);
    CHECK(result.problems ==
          "the agent dropped 0 bytes of stdout (outbox full); gap events mark where; "
          "the hub recorded 4 bytes of stdout gaps");
  }

  SECTION("undelivered bytes") {
    f.ledger.record_data(out, 1, "0123");
    auto report = final_for("0123456789", "");
    report.stdout_summary.dropped_bytes = 6;
    report.stdout_summary.undelivered_bytes = 6;
    const auto result = f.ledger.verify(kAttempt, report);
    CHECK_FALSE(result.verified);
    CHECK(result.problems ==
          "the agent could not deliver the last 6 bytes of stdout (a frame of it was refused, or "
          "its seqs were gone; see the final's error); 4 are stored");
  }

  SECTION("problems of both streams, stdout first, joined with '; '") {
    f.ledger.record_data(out, 1, "XYZ");
    f.ledger.record_data(err, 1, "0123456789AB");
    const auto result = f.ledger.verify(kAttempt, final_for("xyz", "0123456789"));
    CHECK_FALSE(result.verified);
    CHECK(result.problems ==
          "the SHA-256 of the stored stdout differs from the agent's; "
          "the hub stored 12 bytes of stderr but the final reports 10");
  }
}

TEST_CASE("OutputLedger: rebuilt from the events table, page by page; forget() and clear()",
          "[output_ledger]") {
  LedgerFixture f;
  // 600 output events (more than two pages of 256), a gap, and one more output.
  std::string all;
  uint64_t offset = 0;
  for (uint64_t seq = 1; seq <= 600; ++seq) {
    const std::string line = "line " + std::to_string(seq) + "\n";
    f.events.append_output("t-1", kAttempt, {StreamName::kStdout, seq, offset, line});
    offset += line.size();
    all += line;
  }
  f.events.append_gap("t-1", kAttempt, StreamName::kStdout, 601, offset, 50);
  offset += 50;
  f.events.append_output("t-1", kAttempt, {StreamName::kStdout, 602, offset, "end\n"});
  all += "end\n";
  f.events.append_output("t-1", kAttempt, {StreamName::kStderr, 1, 0, "err\n"});
  // Another attempt's output is not this attempt's.
  f.events.append_output("t-2", "t-2-a1", {StreamName::kStdout, 1, 0, "other\n"});
  REQUIRE(f.store->commit().ok());

  const auto check_rebuilt = [&](OutputLedger& ledger) {
    const StreamLedger& out = ledger.stream(kAttempt, StreamName::kStdout);
    CHECK(out.highest_seq == 602);
    CHECK(out.stored_bytes == all.size() + 50);
    CHECK(out.gap_bytes == 50);
    CHECK(out.digest.hex_digest() == protocol::sha256_hex(all));
    const StreamLedger& err = ledger.stream(kAttempt, StreamName::kStderr);
    CHECK(err.highest_seq == 1);
    CHECK(err.stored_bytes == 4);
    CHECK(err.digest.hex_digest() == protocol::sha256_hex("err\n"));
    CHECK(ledger.stream("t-2-a1", StreamName::kStdout).stored_bytes == 6);
  };
  check_rebuilt(f.ledger);

  // A fresh ledger (a restarted hub) rebuilds the same from storage.
  OutputLedger restarted(f.events);
  check_rebuilt(restarted);

  // In-memory changes that were never stored are dropped by forget().
  f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStdout), 603, "not stored");
  f.ledger.record_data(f.ledger.stream(kAttempt, StreamName::kStderr), 2, "not stored");
  CHECK(f.ledger.stream(kAttempt, StreamName::kStdout).highest_seq == 603);
  f.ledger.forget(kAttempt);
  check_rebuilt(f.ledger);

  f.ledger.record_data(f.ledger.stream("t-2-a1", StreamName::kStdout), 2, "not stored");
  CHECK(f.ledger.stream("t-2-a1", StreamName::kStdout).highest_seq == 2);
  f.ledger.clear();
  CHECK(f.ledger.stream("t-2-a1", StreamName::kStdout).highest_seq == 1);
  check_rebuilt(f.ledger);

  // The rebuilt ledger verifies the final of what is stored.
  auto report = final_for(all, "err\n");
  report.stdout_summary.bytes = all.size() + 50;
  CHECK(f.ledger.missing(kAttempt, report).empty());
}

TEST_CASE(
    "OutputLedger: both streams rebuilt in the same reads, each paged on its own (one ends "
    "pages before the other)",
    "[output_ledger]") {
  LedgerFixture f;
  // Interleaved as a task writes them: 300 stderr lines, the first 260
  // alternating with stdout's 260 (each over a page of 256).
  std::string out;
  std::string err;
  for (uint64_t seq = 1; seq <= 300; ++seq) {
    const std::string line = std::to_string(seq) + "\n";
    if (seq <= 260) {
      f.events.append_output("t-1", kAttempt, {StreamName::kStdout, seq, out.size(), "o" + line});
      out += "o" + line;
    }
    f.events.append_output("t-1", kAttempt, {StreamName::kStderr, seq, err.size(), "e" + line});
    err += "e" + line;
  }
  REQUIRE(f.store->commit().ok());
  OutputLedger restarted(f.events);
  const StreamLedger& stderr_ledger = restarted.stream(kAttempt, StreamName::kStderr);
  CHECK(stderr_ledger.highest_seq == 300);
  CHECK(stderr_ledger.stored_bytes == err.size());
  CHECK(stderr_ledger.digest.hex_digest() == protocol::sha256_hex(err));
  const StreamLedger& stdout_ledger = restarted.stream(kAttempt, StreamName::kStdout);
  CHECK(stdout_ledger.highest_seq == 260);
  CHECK(stdout_ledger.stored_bytes == out.size());
  CHECK(stdout_ledger.digest.hex_digest() == protocol::sha256_hex(out));
}
