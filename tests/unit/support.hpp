// Shared helpers for the unit tests.
#pragma once

#include <sys/wait.h>
#include <uv.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/attempt_sink.hpp"
#include "agent/task_executor.hpp"
#include "hub/hub_store.hpp"
#include "protocol/sha256.hpp"

namespace tether::test {

// A directory under /tmp ("/tmp/PREFIX-XXXXXX"), removed with everything in it.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& prefix) {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Options for running tasks in this test binary: the tether-task-init built
// with it (TETHER_TASK_INIT, set by meson), as the test binary has none beside
// it.
inline agent::ExecutorOptions executor_options() {
  agent::ExecutorOptions options;
  if (const char* init = std::getenv("TETHER_TASK_INIT")) options.runner.task_init_program = init;
  return options;
}

// A hub.db in DIR/data, as the hub opens it.
inline std::unique_ptr<core::SqliteStore> open_test_hub_store(const std::string& dir) {
  auto store = hub::open_hub_store(dir + "/data", hub::SyncMode::kNormal, 1000);
  if (!store) throw std::runtime_error("cannot open hub.db: " + store.error().message);
  return std::move(*store);
}

// Paths to helper programs, exported by meson (see tests/unit/meson.build).
inline std::string helper_path(const char* variable) {
  const char* value = std::getenv(variable);
  if (!value || !*value) throw std::runtime_error(std::string(variable) + " is not set");
  return value;
}
inline std::string test_writer() {
  return helper_path("TETHER_TEST_WRITER");
}
inline std::string agent_binary() {
  return helper_path("TETHER_AGENT");
}

// Runs a shell command and returns its stdout; throws if it fails.
inline std::string shell_output(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    out.append(buffer, n);
  const int status = ::pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("command failed: " + command);
  }
  return out;
}

// Collects what an attempt reports and checks the framing invariants as
// chunks arrive: seq counts from 1 without gaps, offsets are contiguous, and
// no chunk is empty or larger than the limit.
class CollectingSink : public agent::AttemptSink {
 public:
  struct StreamRecord {
    std::string bytes;  // kept only when keep_bytes is set
    protocol::Sha256 digest;
    uint64_t total = 0;
    uint64_t chunks = 0;
    std::vector<uint64_t> emitted_at_ns;  // uv_hrtime() when each chunk arrived
    std::vector<std::string> chunk_data;  // kept only when keep_chunks is set
  };

  explicit CollectingSink(size_t max_chunk = 64 * 1024) : max_chunk_(max_chunk) {}

  bool keep_bytes = true;
  bool keep_chunks = false;
  int started_pid = 0;
  int started_count = 0;
  std::vector<std::string> violations;
  StreamRecord out;
  StreamRecord err;

  void on_started(const protocol::StartedReport& started, int) override {
    started_pid = started.pid;
    ++started_count;
  }

  void on_output(protocol::OutputChunk&& chunk, const protocol::Sha256&) override {
    StreamRecord& record = chunk.stream == protocol::StreamName::kStdout ? out : err;
    if (chunk.seq != record.chunks + 1) {
      violations.push_back("seq " + std::to_string(chunk.seq) + " after " +
                           std::to_string(record.chunks));
    }
    if (chunk.offset != record.total) {
      violations.push_back("offset " + std::to_string(chunk.offset) + " expected " +
                           std::to_string(record.total));
    }
    if (chunk.data.empty() || chunk.data.size() > max_chunk_) {
      violations.push_back("chunk of " + std::to_string(chunk.data.size()) + " bytes");
    }
    record.chunks += 1;
    record.total += chunk.data.size();
    record.digest.update(chunk.data);
    record.emitted_at_ns.push_back(uv_hrtime());
    if (keep_bytes) record.bytes += chunk.data;
    if (keep_chunks) record.chunk_data.push_back(std::move(chunk.data));
  }

 private:
  size_t max_chunk_;
};

}  // namespace tether::test
