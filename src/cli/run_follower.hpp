// RunFollower: follows a fan-out run's event stream
// (GET /api/v1/runs/{id}/events: every event of every task of the run, in
// storage order, and "run" events for the run's own state) until the hub
// says `end`, resuming with Last-Event-ID after a dropped connection.
//
// Each task's output goes through a HostLineAssembler: whole lines,
// prefixed with the task's agent ("edge-1: ..."), stdout to our stdout and
// stderr to our stderr. Output events name their attempt ("t-...-a1"), the
// task id followed by "-aN"; status events their task. The agent of a task
// comes from the run's view, fetched again when an unknown task appears.
// With `notes` (stderr is a terminal) the run's state changes and dropped
// output are told on stderr, on lines of their own.
//
// With a LiveBoard (both stdout and stderr are terminals), nothing is
// written: every event changes the board instead (states, bytes, exit
// codes, lines, dropped output, the run's state).
#pragma once

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "cli/host_line_assembler.hpp"
#include "cli/hub_client.hpp"
#include "cli/live_board.hpp"
#include "cli/resuming_event_stream.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/run_api.hpp"

namespace tether::cli {

struct RunFollowOutcome {
  bool ended = false;          // the hub sent `end`: the run is over
  std::string state;           // the run's last known state
  bool interrupted = false;    // stopped by an interrupt before the end
  bool stdout_closed = false;  // writing to our stdout failed with EPIPE
};

class RunFollower {
 public:
  // `run`: the run as the hub answered its submission (with its tasks).
  // `show_output` false (--json): the stream is asked for without output
  // (?output=0) and nothing is written but notes. `board`: where events
  // go instead of our stdout and stderr (nullptr: the lines above); it
  // must outlive the follower.
  RunFollower(HubClient& client, protocol::RunView run, bool show_output, bool notes,
              LiveBoard* board = nullptr);

  // Follows until `end`, an interrupt (`interrupted` set and `control`
  // stopped) or a closed stdout; may be called again after an interrupt
  // and resumes where it stopped. Errors: the hub's refusal of the stream,
  // a malformed stream or event (code "sse_invalid").
  Result<RunFollowOutcome> run(const std::atomic<bool>& interrupted,
                               core::HttpCallControl& control);

  // Writes what is left of unfinished lines (with a newline added); done
  // at `end` by run(), by the caller when it stops following early.
  void finish_output() { lines_.finish_all(); }

 private:
  Result<void> on_event(const SseEvent& event);
  Result<void> on_output(const protocol::JsonObjectReader& data);
  void on_status(const protocol::JsonObjectReader& data);
  void on_run(const protocol::JsonObjectReader& data);
  void on_final(const protocol::JsonObjectReader& data);
  void on_gap(const protocol::JsonObjectReader& data);
  // The agent whose task this is; the task id itself if the run's view
  // does not know it even when fetched again.
  std::string agent_of(const std::string& task_id);
  void write(int fd, std::string_view bytes);
  void note(const std::string& text);

  HubClient& client_;
  std::string run_id_;
  bool show_output_;
  bool notes_;
  LiveBoard* board_;
  std::map<std::string, std::string> agents_;  // task id -> agent name
  std::set<std::string> looked_up_;            // unknown task ids already looked for
  HostLineAssembler lines_;
  RunFollowOutcome outcome_;
  ResumingEventStream stream_;
};

// The task id of an attempt id: "t-1-a2" -> "t-1". An id without a
// "-aN" suffix is returned as it is.
std::string task_id_of_attempt(const std::string& attempt_id);

// True for the task states a task does not leave (succeeded ... skipped).
bool is_terminal_task_state(std::string_view state);

}  // namespace tether::cli
