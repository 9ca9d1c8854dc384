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
