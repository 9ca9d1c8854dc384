// LiveBoard: the live board of a fan-out run on the operator's terminal
// (docs/cli.md, Fleets): a RunBoard drawn on a TerminalScreen by a thread
// of its own, which also reads the keys.
//
// The thread that follows the run's stream changes the board through
// update() and never waits for the terminal: the drawing thread redraws at
// most ten times a second (changes in between are drawn together), at once
// after a key or a window size change if the last frame is older than
// that, and once more, with everything, when the board is closed. "q"
// stops following as an interrupt does (InterruptWatcher::interrupt), but
// is remembered (quit_requested) so the run is not cancelled even with
// --cancel-on-interrupt; a second interrupt, or "q" after one, exits at
// once, after the terminal was given back.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string_view>
#include <thread>

#include "cli/interrupt_watcher.hpp"
#include "cli/key_decoder.hpp"
#include "cli/run_board.hpp"
#include "cli/terminal_screen.hpp"

namespace tether::cli {

// Frames drawn at most this often, in milliseconds.
inline constexpr int kBoardFrameMs = 100;

class LiveBoard {
 public:
  // Takes the terminal (TerminalScreen::usable() must hold) and starts
  // drawing `run`'s board.
  LiveBoard(const protocol::RunView& run, InterruptWatcher& watcher);
  // Draws the last frame and gives the terminal back.
  ~LiveBoard();
  LiveBoard(const LiveBoard&) = delete;
  LiveBoard& operator=(const LiveBoard&) = delete;

  // Applies `change` to the board and has it drawn.
  void update(const std::function<void(RunBoard&)>& change);
  // "q" was pressed.
  bool quit_requested() const { return quit_.load(); }

 private:
  void draw_loop();
  void on_keys(std::string_view bytes);
  void draw_now();
  void wake();

  InterruptWatcher& watcher_;
  std::mutex mutex_;  // guards board_
  RunBoard board_;
  TerminalScreen screen_;
  KeyDecoder keys_;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> dirty_{true};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

}  // namespace tether::cli
