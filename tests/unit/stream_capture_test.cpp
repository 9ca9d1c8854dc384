// StreamCapture over a real pipe: every byte arrives, in order, and a chatty
// writer is polled on the chunker's deadlines instead of read per write.
#include <uv.h>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "agent/stream_capture.hpp"
#include "core/pipe_reader.hpp"
#include "core/run.hpp"
#include "support.hpp"

using namespace tether;

namespace {

// The read end of a fresh pipe as a PipeReader; `write_fd` is the other end.
std::unique_ptr<core::PipeReader> pipe_reader(core::Loop& loop, int& write_fd) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  write_fd = fds[1];
  core::UvHandle<uv_pipe_t> pipe;
  uv_pipe_init(loop.get(), pipe.get(), 0);
  pipe.mark_initialized();
  uv_pipe_open(pipe.get(), fds[0]);
  return std::make_unique<core::PipeReader>(std::move(pipe), 64 * 1024);
}

core::Co<void> capture(agent::StreamCapture& stream) {
  co_await stream.run(core::CancellationToken());
}

// Writes `lines` numbered lines, `gap_ms` apart, then closes the pipe.
std::string write_lines(int fd, int lines, int gap_ms) {
  std::string all;
  for (int i = 0; i < lines; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    all += line;
    REQUIRE(::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
  }
  ::close(fd);
  return all;
}

}  // namespace

TEST_CASE("a chatty stream is polled at the chunker's deadlines, losing nothing", "[capture]") {
  core::Loop loop;
  int write_fd = -1;
  auto reader = pipe_reader(loop, write_fd);
  test::CollectingSink sink;
  agent::ChunkerOptions options;
  options.flush_interval_ms = 20;
  agent::StreamCapture stream(loop, *reader, protocol::StreamName::kStdout, options, sink);
  // The writer is the workload: a line every 2 ms for about 400 ms.
  std::string written;
  std::thread writer([&] { written = write_lines(write_fd, 200, 2); });
  core::run_to_completion(loop, capture(stream));
  writer.join();

  CHECK(sink.violations.empty());
  CHECK(sink.out.bytes == written);
  CHECK(stream.summary().bytes == written.size());
  // Read per write, 200 lines take about 200 reads; polled every 20 ms, a
  // few dozen (one poll, and one wakeup after each empty one, per interval).
  INFO("reads: " << reader->reads() << ", chunks: " << sink.out.chunks);
  CHECK(reader->reads() < 100);
}

TEST_CASE("bulk output is read as it comes, not polled", "[capture]") {
  core::Loop loop;
  int write_fd = -1;
  auto reader = pipe_reader(loop, write_fd);
  test::CollectingSink sink;
  agent::ChunkerOptions options;
  options.flush_interval_ms = 20;
  agent::StreamCapture stream(loop, *reader, protocol::StreamName::kStdout, options, sink);
  // 8 MiB in 64 KiB writes, while the reads are as large as the buffer:
  // every byte once, in order, whatever mix of reads and polls carried it.
  std::string block(64 * 1024, 'x');
  std::string written;
  std::thread writer([&] {
    for (int i = 0; i < 128; ++i) {
      block[0] = static_cast<char>('a' + i % 26);
      written += block;
      size_t sent = 0;
      while (sent < block.size()) {
        const ssize_t n = ::write(write_fd, block.data() + sent, block.size() - sent);
        REQUIRE(n > 0);
        sent += static_cast<size_t>(n);
      }
    }
    ::close(write_fd);
  });
  core::run_to_completion(loop, capture(stream));
  writer.join();
  CHECK(sink.violations.empty());
  CHECK(sink.out.bytes == written);
}
