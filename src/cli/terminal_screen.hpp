// TerminalScreen: the operator's terminal while the live board of a
// fan-out run is up (docs/cli.md, Fleets). Taking it switches to the
// alternate screen (what was on the terminal comes back at the end), hides
// the cursor, turns off automatic wrapping (a line too wide is cut by the
// terminal, never pushed onto the next row) and, when stdin is the
// terminal we are in the foreground of, puts it in non-canonical mode
// without echo, so keys come one by one. Ctrl-C still sends SIGINT (ISIG
// stays on: interrupts work as without the board); Ctrl-Z and Ctrl-\ are
// disabled while the board is up, because a stopped or dumped CLI could not
// give the terminal back.
//
// Everything is given back by restore(): on destruction (every return and
// error path), and before the CLI exits at once on a second interrupt
// (InterruptWatcher's exit hook). Keys typed and not read are discarded
// then, so they do not reach the shell.
//
// SIGWINCH is blocked in the thread that takes the screen (the HTTP calls
// of the main thread must not see EINTR) and its handler writes a byte to
// resize_fd(), which the board's own thread polls.
#pragma once

#include <termios.h>

#include <signal.h>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace tether::cli {

struct ScreenSize {
  size_t rows = 24;
  size_t cols = 80;
};

class TerminalScreen {
 public:
  // True when the board can be drawn: stdout and stderr are terminals,
  // TERM names one that is not "dumb", and we are in the foreground of
  // stdout's terminal (a background job must not take it).
  static bool usable();

  TerminalScreen();
  ~TerminalScreen();
  TerminalScreen(const TerminalScreen&) = delete;
  TerminalScreen& operator=(const TerminalScreen&) = delete;

  // Whether stdin is the terminal and gives keys (non-canonical mode).
  bool reads_keys() const { return reads_keys_; }
  // Readable after the window changed size; -1 if no pipe could be made.
  int resize_fd() const { return resize_pipe_[0]; }
  // Reads what resize_fd() has; the next frame is drawn whole.
  void take_resize();
  // The window's size (TIOCGWINSZ on stdout); 24 x 80 if it says 0.
  ScreenSize size() const;

  // Shows `lines` from the top left, one per row (at most size().rows,
  // none wider than size().cols, no control characters): only rows that
  // differ from the last frame are written. Nothing after restore() or
  // once a write failed (the terminal is gone).
  void draw(const std::vector<std::string>& lines);

  // Gives the terminal back as it was. Idempotent; may be called from any
  // thread: it waits at most half a second for a frame being written (a
  // terminal stopped with Ctrl-S holds it), then restores all the same.
  void restore();

 private:
  std::timed_mutex output_;  // one writer of frames or of the restore
  std::atomic<bool> restored_{false};
  bool reads_keys_ = false;
  termios saved_{};
  std::vector<std::string> shown_;   // the frame on screen, row by row
  bool clear_next_ = true;           // the next frame starts from a clear screen
  std::atomic<bool> broken_{false};  // a write failed
  int resize_pipe_[2] = {-1, -1};
  struct sigaction previous_winch_ {};
  bool winch_was_blocked_ = false;
};

}  // namespace tether::cli
