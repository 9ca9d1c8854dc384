// agent::InFlightWindow: the frames sent and not yet acknowledged, and their
// bytes (docs/protocol.md 4.2): cumulative output acks per (attempt, stream),
// single frames by message id, whole attempts.
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "agent/in_flight_window.hpp"
#include "protocol/frames.hpp"

using namespace tether;
using agent::FrameKind;
using agent::InFlightWindow;
using protocol::StreamName;

namespace {

int64_t next_row = 1;

InFlightWindow::Entry output(const std::string& attempt, StreamName stream, uint64_t seq,
                             size_t bytes, FrameKind kind = FrameKind::kOutput) {
  InFlightWindow::Entry entry;
  entry.id = next_row++;
  entry.message_id = protocol::output_message_id(attempt, stream, seq);
  entry.attempt_id = attempt;
  entry.kind = kind;
  entry.stream = stream;
  entry.seq = seq;
  entry.bytes = bytes;
  return entry;
}

InFlightWindow::Entry started(const std::string& attempt, size_t bytes) {
  InFlightWindow::Entry entry;
  entry.id = next_row++;
  entry.message_id = protocol::started_message_id(attempt);
  entry.attempt_id = attempt;
  entry.kind = FrameKind::kStarted;
  entry.stream = StreamName::kStdout;
  entry.seq = 0;
  entry.bytes = bytes;
  return entry;
}

InFlightWindow::Entry final_frame(const std::string& attempt, size_t bytes) {
  auto entry = started(attempt, bytes);
  entry.message_id = protocol::final_message_id(attempt);
  entry.kind = FrameKind::kFinal;
  return entry;
}

}  // namespace

TEST_CASE("InFlightWindow: bytes() counts every frame added", "[in_flight_window]") {
  InFlightWindow window;
  CHECK(window.bytes() == 0);
  window.add(started("a", 7));
  CHECK(window.bytes() == 7);
  window.add(output("a", StreamName::kStdout, 1, 100));
  window.add(output("a", StreamName::kStdout, 2, 200));
  window.add(output("a", StreamName::kStderr, 1, 30));
  window.add(output("a", StreamName::kStdout, 3, 40, FrameKind::kGap));
  window.add(final_frame("a", 9));
  CHECK(window.bytes() == 386);
  window.clear();
  CHECK(window.bytes() == 0);
  // Cleared means gone: later acks find nothing to subtract.
  window.forget_output("a", StreamName::kStdout, 3);
  window.forget_message(protocol::final_message_id("a"));
  window.forget_attempt("a");
  CHECK(window.bytes() == 0);
}

TEST_CASE("InFlightWindow: forget_output is cumulative per attempt and stream",
          "[in_flight_window]") {
  InFlightWindow window;
  window.add(output("a", StreamName::kStdout, 1, 10));
  window.add(output("a", StreamName::kStdout, 2, 20));
  window.add(output("a", StreamName::kStdout, 3, 30, FrameKind::kGap));
  window.add(output("a", StreamName::kStdout, 4, 40));
  window.add(output("a", StreamName::kStderr, 1, 5));
  window.add(output("b", StreamName::kStdout, 1, 1000));
  window.add(started("a", 3));
  REQUIRE(window.bytes() == 1108);

  window.forget_output("a", StreamName::kStdout, 2);  // seqs 1 and 2
  CHECK(window.bytes() == 1078);
  window.forget_output("a", StreamName::kStdout, 2);  // the same ack again
  CHECK(window.bytes() == 1078);
  window.forget_output("a", StreamName::kStdout, 1);  // an older ack
  CHECK(window.bytes() == 1078);
  window.forget_output("a", StreamName::kStdout, 0);
  CHECK(window.bytes() == 1078);
  // Another stream, attempt or an unknown one: untouched.
  window.forget_output("c", StreamName::kStdout, 100);
  CHECK(window.bytes() == 1078);
  window.forget_output("a", StreamName::kStderr, 1);
  CHECK(window.bytes() == 1073);
  // The gap frame (seq 3) goes with the cumulative ack like output.
  window.forget_output("a", StreamName::kStdout, 3);
  CHECK(window.bytes() == 1043);
  // An ack beyond what was sent takes what there is.
  window.forget_output("a", StreamName::kStdout, 99);
  CHECK(window.bytes() == 1003);
  // The started frame is not output: only forget_message takes it.
  window.forget_output("a", StreamName::kStdout, UINT64_MAX);
  CHECK(window.bytes() == 1003);
  window.forget_stream("b", StreamName::kStdout);
  CHECK(window.bytes() == 3);
  // Frames added after an ack are counted and acked on their own.
  window.add(output("a", StreamName::kStdout, 5, 50));
  CHECK(window.bytes() == 53);
  window.forget_output("a", StreamName::kStdout, 4);
  CHECK(window.bytes() == 53);
  window.forget_output("a", StreamName::kStdout, 5);
  CHECK(window.bytes() == 3);
}

TEST_CASE("InFlightWindow: forget_message takes one started, final or refused output frame",
          "[in_flight_window]") {
  InFlightWindow window;
  window.add(started("a", 7));
  window.add(final_frame("a", 11));
  window.add(output("a", StreamName::kStdout, 1, 100));
  window.add(output("a", StreamName::kStdout, 2, 200));
  window.add(output("a", StreamName::kStdout, 3, 300));
  window.add(started("b", 13));
  REQUIRE(window.bytes() == 631);

  window.forget_message(protocol::started_message_id("a"));
  CHECK(window.bytes() == 624);
  window.forget_message(protocol::started_message_id("a"));  // already gone
  CHECK(window.bytes() == 624);
  window.forget_message("no-such-message");
  CHECK(window.bytes() == 624);
  window.forget_message(protocol::final_message_id("a"));
  CHECK(window.bytes() == 613);

  // A refused output frame in the middle of its stream.
  window.forget_message(protocol::output_message_id("a", StreamName::kStdout, 2));
  CHECK(window.bytes() == 413);
  window.forget_message(protocol::output_message_id("a", StreamName::kStdout, 2));
  CHECK(window.bytes() == 413);
  // A later cumulative ack over it does not count it twice.
  window.forget_output("a", StreamName::kStdout, 3);
  CHECK(window.bytes() == 13);
  // The last frame of a stream, by message id, and then the stream is empty.
  window.add(output("a", StreamName::kStderr, 1, 40));
  window.forget_message(protocol::output_message_id("a", StreamName::kStderr, 1));
  CHECK(window.bytes() == 13);
  window.forget_output("a", StreamName::kStderr, 1);
  CHECK(window.bytes() == 13);

  window.forget_message(protocol::started_message_id("b"));
  CHECK(window.bytes() == 0);
}

TEST_CASE("InFlightWindow: forget_attempt drops every frame of one attempt only",
          "[in_flight_window]") {
  InFlightWindow window;
  window.add(started("a", 1));
  window.add(output("a", StreamName::kStdout, 1, 10));
  window.add(output("a", StreamName::kStdout, 2, 20, FrameKind::kGap));
  window.add(output("a", StreamName::kStderr, 1, 30));
  window.add(final_frame("a", 2));
  window.add(started("b", 100));
  window.add(output("b", StreamName::kStdout, 1, 200));
  window.add(output("b", StreamName::kStderr, 1, 400));
  window.add(final_frame("b", 800));
  REQUIRE(window.bytes() == 1563);

  window.forget_attempt("a");
  CHECK(window.bytes() == 1500);
  window.forget_attempt("a");
  CHECK(window.bytes() == 1500);
  window.forget_attempt("nobody");
  CHECK(window.bytes() == 1500);
  // What is left is b's, frame by frame.
  window.forget_output("b", StreamName::kStderr, 1);
  CHECK(window.bytes() == 1100);
  window.forget_message(protocol::final_message_id("b"));
  CHECK(window.bytes() == 300);
  window.forget_attempt("b");
  CHECK(window.bytes() == 0);
}
