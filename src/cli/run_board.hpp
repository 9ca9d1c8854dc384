// RunBoard: what the live board of a fan-out run shows (docs/cli.md,
// Fleets), kept apart from the terminal so it can be tested as text.
//
//   run r-5d1c0a0e running: 1 running, 1 succeeded, 1 failed
//     AGENT   STATE          STDOUT      STDERR  EXIT
//   > edge-1  running      12.3 KiB         0 B  -
//     edge-2  failed           28 B        40 B  3
//     edge-3  succeeded         6 B         0 B  0
//   -- edge-1 -- keys: ↑↓ j k host · Tab n next with output · q stop following -----
//   out| building...
//   err| warning: cache cold
//
// The model: per agent (one task each) its task's state, the bytes of its
// stdout and stderr (the sizes of the output events' data), its exit code
// or signal (from final events), and its last lines; the run's state; the
// host followed: the first host that wrote something until a key chooses
// another (the first agent before any output).
//
// Every byte a host, an agent or the hub wrote goes through printable()
// before it is shown, so a task's escape sequences cannot move the cursor,
// clear the screen or draw a row that looks like the board's; a task's
// lines are shown after "out| " or "err| ", which no row of the board
// begins with. Tabs are expanded to spaces first; a "\r" before a newline
// is dropped (a CRLF line), any other is shown as "\x0d".
//
// Memory is bounded: each host keeps its last `max_lines_per_host` lines,
// each cut at `max_line_bytes`, within a share of `total_line_bytes`
// (at least `min_host_bytes`; the followed host at least
// `followed_host_bytes`), so a fleet of 10,000 chatty hosts cannot make the
// CLI hold all their output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/run_api.hpp"

namespace tether::cli {

struct RunBoardLimits {
  size_t max_lines_per_host = 500;
  size_t max_line_bytes = 2048;
  size_t total_line_bytes = 32 << 20;
  size_t min_host_bytes = 4 << 10;
  size_t followed_host_bytes = 512 << 10;
};

class RunBoard {
 public:
  // `run`: the run as its submission answered (its id, state, tasks in
  // the order they are shown).
  explicit RunBoard(const protocol::RunView& run, RunBoardLimits limits = {});

  // A task the view did not list (found later); nothing if it is known.
  void add_task(const std::string& task_id, const std::string& agent);
  // Events of a known task (others are ignored). `fd`: 1 stdout, 2 stderr.
  void on_status(const std::string& task_id, const std::string& state);
  void on_output(const std::string& task_id, int fd, std::string_view bytes);
  void on_final(const std::string& task_id, std::optional<int64_t> exit_code,
                std::optional<int64_t> signal);
  // The agent dropped `length` bytes of the task's output (a gap event).
  void on_gap(const std::string& task_id, uint64_t length);
  void on_run(const std::string& state, const std::string& note);
  // A line of tether's own under the header ("cancelling run ..."); "" for none.
  void set_notice(const std::string& text) { notice_ = text; }

  // The keys: the host above or below (wrapping around), the next or
  // previous one that wrote something (if none, the followed one stays).
  void follow_previous();
  void follow_next();
  void follow_next_with_output();
  void follow_previous_with_output();
  // The agent followed; "" for a run without tasks.
  std::string followed_agent() const;

  // The screen for a terminal of `rows` lines and `cols` columns: at most
  // `rows` lines, none wider than `cols` columns (terminal_text.hpp), no
  // control characters, no newlines. The header, the notice if any, the
  // column titles, one row per agent (the followed one marked "> "; when
  // they do not all fit, a window around the followed one and a line
  // "+N more (A above, B below)"), a separator naming the followed host
  // and the keys, then as many of its last lines as fit.
  std::vector<std::string> render(size_t rows, size_t cols) const;

 private:
  struct Line {
    std::string bytes;  // as the host wrote them, at most max_line_bytes
    int fd = 1;         // 1 stdout, 2 stderr, 0 a note of tether's own
    bool cut = false;   // the host's line was longer
  };
  struct Host {
    std::string task_id, agent, state;
    uint64_t stdout_bytes = 0, stderr_bytes = 0;
    std::optional<int64_t> exit_code, signal;
    std::deque<Line> lines;
    size_t line_bytes = 0;  // of `lines`
    Line partial[2];        // stdout's and stderr's line not ended yet
  };

  Host* find(const std::string& task_id);
  void add_line(size_t host, Line line);
  void end_partial_lines(size_t host);
  void trim(size_t host);
  void follow(size_t host);
  size_t budget(size_t host) const;
  std::string header() const;
  std::string row(const Host& host, bool followed, size_t name_width) const;
  std::vector<std::string> rows_window(size_t room, size_t cols) const;
  std::vector<std::string> output_lines(size_t room, size_t cols) const;

  RunBoardLimits limits_;
  std::string run_id_, run_state_, run_note_, notice_;
  std::vector<Host> hosts_;
  std::map<std::string, size_t> by_task_;
  std::map<std::string, size_t> counts_;  // hosts per state, none at 0
  size_t name_width_ = 5;                 // of the AGENT column: the widest name, at most 24
  size_t followed_ = 0;
  bool chosen_ = false;      // a key chose the followed host
  bool any_output_ = false;  // some host wrote something
};

// How a line of a host is shown: "out| " or "err| " and its bytes made
// printable (tabs expanded, a cut marked), or a note of tether's as it is.
std::string board_line_text(std::string_view bytes, int fd, bool cut);

}  // namespace tether::cli
