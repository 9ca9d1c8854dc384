// The chunking policy, driven by an explicit clock.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "agent/output_chunker.hpp"
#include "protocol/utf8.hpp"

using namespace tether;
using tether::agent::ChunkerOptions;
using tether::agent::OutputChunker;
using tether::protocol::OutputChunk;
using tether::protocol::StreamName;

namespace {

struct Recorder {
  std::vector<OutputChunk> chunks;
  std::vector<uint64_t> times;
  uint64_t now = 0;
  OutputChunker make(ChunkerOptions options) {
    return OutputChunker(StreamName::kStdout, options, [this](OutputChunk&& chunk) {
      chunks.push_back(std::move(chunk));
      times.push_back(now);
    });
  }
};

}  // namespace

TEST_CASE("a lone line after a quiet interval is flushed at once", "[chunker]") {
  Recorder rec;
  auto chunker = rec.make({20, 64 * 1024});
  rec.now = 1000;
  chunker.append("first line\n", rec.now);
  REQUIRE(rec.chunks.size() == 1);
  CHECK(rec.chunks[0].data == "first line\n");
  CHECK(rec.chunks[0].seq == 1);
  CHECK(rec.chunks[0].offset == 0);
  CHECK_FALSE(chunker.deadline());

  rec.now = 1500;  // quiet for far longer than the interval
  chunker.append("second\n", rec.now);
  REQUIRE(rec.chunks.size() == 2);
  CHECK(rec.chunks[1].seq == 2);
  CHECK(rec.chunks[1].offset == 11);
}

TEST_CASE("bytes soon after a flush wait for the interval, then go together", "[chunker]") {
  Recorder rec;
  auto chunker = rec.make({20, 64 * 1024});
  rec.now = 100;
  chunker.append("a\n", rec.now);  // flushed at once
  rec.now = 105;
  chunker.append("b\n", rec.now);  // within the interval of the last flush: buffered
  rec.now = 110;
  chunker.append("c\n", rec.now);
  REQUIRE(rec.chunks.size() == 1);
  REQUIRE(chunker.deadline() == 125u);  // 20 ms after the first unflushed byte

  rec.now = 124;
  chunker.on_deadline(rec.now);  // early: nothing due yet
  REQUIRE(rec.chunks.size() == 1);
  rec.now = 125;
  chunker.on_deadline(rec.now);
  REQUIRE(rec.chunks.size() == 2);
  CHECK(rec.chunks[1].data == "b\nc\n");
  CHECK(rec.chunks[1].offset == 2);
  CHECK_FALSE(chunker.deadline());
}

TEST_CASE("reaching chunk_bytes flushes at once, in chunks of at most chunk_bytes", "[chunker]") {
  Recorder rec;
  auto chunker = rec.make({20, 16});
  rec.now = 0;
  chunker.append("x", rec.now);  // flushed at once (quiet)
  rec.now = 1;
  chunker.append(std::string(40, 'y'), rec.now);
  // 40 bytes: two full 16-byte chunks at once; 8 wait for the interval.
  REQUIRE(rec.chunks.size() == 3);
  CHECK(rec.chunks[1].data.size() == 16);
  CHECK(rec.chunks[2].data.size() == 16);
  CHECK(chunker.bytes_buffered() == 8);
  REQUIRE(chunker.deadline() == 21u);
  rec.now = 21;
  chunker.on_deadline(rec.now);
  REQUIRE(rec.chunks.size() == 4);
  CHECK(rec.chunks[3].data == std::string(8, 'y'));
  CHECK(rec.chunks[3].offset == 33);
  CHECK(chunker.bytes_emitted() == 41);
}

TEST_CASE("a chunk never ends inside a UTF-8 sequence", "[chunker]") {
  Recorder rec;
  auto chunker = rec.make({20, 8});
  // "aaaaaaa" + "é" puts the two bytes of é across the 8-byte cut.
  chunker.append("aaaaaaa\xC3\xA9zzzzzz", 0);
  chunker.finish(1);
  std::string joined;
  for (const auto& chunk : rec.chunks) {
    CHECK(protocol::is_valid_utf8(chunk.data));
    CHECK(chunk.data.size() <= 8);
    joined += chunk.data;
  }
  CHECK(rec.chunks[0].data == "aaaaaaa");
  CHECK(joined == "aaaaaaa\xC3\xA9zzzzzz");
}

TEST_CASE("a partial UTF-8 sequence waits for its last byte, without a timer", "[chunker]") {
  Recorder rec;
  auto chunker = rec.make({20, 64 * 1024});
  chunker.append("ok\n\xE2\x9C", 0);  // "✓" is cut after two of its three bytes
  REQUIRE(rec.chunks.size() == 1);
  CHECK(rec.chunks[0].data == "ok\n");
  CHECK(chunker.bytes_buffered() == 2);
  CHECK_FALSE(chunker.deadline());  // nothing to flush until the sequence completes
  chunker.append("\x93", 50);
  REQUIRE(rec.chunks.size() == 2);
  CHECK(rec.chunks[1].data == "\xE2\x9C\x93");
}

TEST_CASE("binary bytes pass through exactly and finish() flushes everything", "[chunker]") {
  Recorder rec;
  auto chunker = rec.make({20, 7});
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  all += "\xF0\x9D";  // ends on an incomplete sequence: finish must still send it
  for (size_t i = 0; i < all.size(); i += 13)
    chunker.append(std::string_view(all).substr(i, 13), i);
  chunker.finish(1000);
  std::string joined;
  uint64_t expected_seq = 1;
  for (const auto& chunk : rec.chunks) {
    CHECK(chunk.seq == expected_seq++);
    CHECK(chunk.offset == joined.size());
    CHECK(chunk.data.size() <= 7);
    joined += chunk.data;
  }
  CHECK(joined == all);
  CHECK(chunker.bytes_buffered() == 0);
}

TEST_CASE("a chunker rejects a chunk size below four bytes", "[chunker]") {
  Recorder rec;
  CHECK_THROWS_AS(rec.make({20, 3}), std::invalid_argument);
}

TEST_CASE(
    "OutputPace: the base interval while quiet, the busy one under many reads, linear between",
    "[chunker][pace]") {
  agent::OutputPace pace(2, 25);
  uint64_t now = 10'000;
  CHECK(pace.flush_interval_ms(now) == 2);  // nothing read yet
  // 500 reads a second for two seconds: quiet.
  for (int i = 0; i < 1000; ++i)
    pace.note_read(now += 2);
  CHECK(pace.reads_per_second(now) == 500);
  CHECK(pace.flush_interval_ms(now) == 2);
  // 20,000 a second (200 tasks x 100 lines): busy.
  for (int i = 0; i < 20'000; ++i)
    pace.note_read(now + i / 20);
  now += 1000;
  CHECK(pace.reads_per_second(now) >= 15'000);
  CHECK(pace.flush_interval_ms(now) == 25);
  // 3,000 a second: halfway between 1,000 and 5,000.
  for (int i = 0; i < 6000; ++i)
    pace.note_read(now + i / 3);
  now += 2000;
  CHECK(pace.reads_per_second(now) == 3000);
  CHECK(pace.flush_interval_ms(now) == 2 + 23 * 2000 / 4000);
  // Then silence: quiet again at once.
  CHECK(pace.flush_interval_ms(now + 600) == 2);
}

TEST_CASE("a chatty stream of a busy agent makes frames of several lines; of a quiet one, one each",
          "[chunker][pace]") {
  for (const bool busy : {false, true}) {
    INFO((busy ? "busy" : "quiet"));
    agent::OutputPace pace(2, 25);
    Recorder recorder;
    ChunkerOptions options;
    options.pace = &pace;
    OutputChunker chunker = recorder.make(options);
    if (busy) {  // the agent was already busy for a second
      for (int i = 0; i < 20'000; ++i)
        pace.note_read(i / 20);
    }
    // A line every 10 ms for a second; when busy, 199 other streams read too
    // (counted by the shared pace).
    for (int line = 0; line < 100; ++line) {
      recorder.now = 1'000 + line * 10;
      if (busy) {
        for (int other = 0; other < 199; ++other)
          pace.note_read(recorder.now);
      }
      chunker.on_deadline(recorder.now);
      chunker.append("a line of output\n", recorder.now);
    }
    recorder.now += 1000;
    chunker.on_deadline(recorder.now);
    REQUIRE(chunker.bytes_buffered() == 0);
    if (busy) {
      CHECK(recorder.chunks.size() <= 40);  // 2 to 3 lines a frame
      // The first line goes at once (nothing was framed before it).
      for (size_t i = 1; i + 1 < recorder.chunks.size(); ++i)
        CHECK(recorder.chunks[i].data.size() >= 2 * 17);
    } else {
      CHECK(recorder.chunks.size() == 100);  // each line at once
      for (size_t i = 0; i < recorder.chunks.size(); ++i)
        CHECK(recorder.times[i] == 1'000 + i * 10);
    }
  }
}
