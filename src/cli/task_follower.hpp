// TaskFollower: follows a task's event stream and reproduces its output.
//
// Output events go to our stdout and stderr byte-exact (base64 chunks are
// decoded). The stream resumes after a dropped connection with Last-Event-ID,
// so nothing is shown twice or skipped. On a terminal, a one-line status is
// kept on stderr and erased around output, and drawn only on a line of its
// own: it never overwrites a line of the task's that has no newline yet.
// Elsewhere only the task's bytes are written. If our stdout is closed (the
// reader of a pipe went away), following stops at once.
#pragma once

#include <atomic>
#include <optional>
#include <string>

#include "cli/hub_client.hpp"
#include "cli/resuming_event_stream.hpp"
#include "cli/sse_parser.hpp"
#include "protocol/attempt_report.hpp"

namespace tether::cli {

struct FollowOutcome {
  bool ended = false;  // the hub sent the end of the stream
  std::string state;   // the task's last known state
  std::optional<protocol::FinalReport> final_report;
  bool interrupted = false;
  bool stdout_closed = false;  // writing to our stdout failed with EPIPE
  bool line_open = false;      // the terminal's last line has no newline yet
};

class TaskFollower {
 public:
  TaskFollower(HubClient& client, std::string task_id, bool follow, bool status_line);

  // Follows until the stream ends or `interrupted` is set (and `control`
  // stopped). Network errors are retried with backoff; 4xx answers end it.
  Result<FollowOutcome> run(const std::atomic<bool>& interrupted, core::HttpCallControl& control);

 private:
  void on_event(const SseEvent& event);
  void write_output(int fd, const std::string& bytes);
  // A note of ours on stderr, on a line of its own.
  void write_note(const std::string& text);
  void draw_status(bool force);
  void clear_status();

  HubClient& client_;
  std::string task_id_;
  bool follow_;
  bool status_line_;
  FollowOutcome outcome_;
  std::string agent_;
  uint64_t bytes_out_ = 0;
  uint64_t bytes_err_ = 0;
  bool status_drawn_ = false;
  bool stdout_is_terminal_ = false;
  bool stderr_is_terminal_ = false;
  int64_t last_draw_ms_ = 0;
  std::optional<Error> failure_;
  ResumingEventStream stream_;
};

// The CLI's exit status for a finished task (see docs/cli.md).
int exit_status_for(const std::string& state,
                    const std::optional<protocol::FinalReport>& final_report);

}  // namespace tether::cli
