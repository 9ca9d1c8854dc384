#include "cli/live_board.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace tether::cli {

namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point then) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - then).count();
}

void drain(int fd) {
  char bytes[64];
  while (::read(fd, bytes, sizeof bytes) > 0) {
  }
}

}  // namespace

LiveBoard::LiveBoard(const protocol::RunView& run, InterruptWatcher& watcher)
    : watcher_(watcher), board_(run) {
  if (::pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) wake_pipe_[0] = wake_pipe_[1] = -1;
  thread_ = std::thread([this] { draw_loop(); });
  // A second interrupt exits at once: the terminal goes back first.
  watcher_.set_before_exit([this] { screen_.restore(); });
}

LiveBoard::~LiveBoard() {
  stopping_ = true;
  wake();
  thread_.join();
  screen_.restore();
  watcher_.set_before_exit(nullptr);
  for (const int fd : wake_pipe_)
    if (fd >= 0) ::close(fd);
}

void LiveBoard::wake() {
  if (wake_pipe_[1] < 0) return;
  const char byte = 'x';
  [[maybe_unused]] const ssize_t written = ::write(wake_pipe_[1], &byte, 1);  // full: awake anyway
}

void LiveBoard::update(const std::function<void(RunBoard&)>& change) {
  {
    std::lock_guard lock(mutex_);
    change(board_);
  }
  if (!dirty_.exchange(true)) wake();
}

void LiveBoard::on_keys(std::string_view bytes) {
  for (const BoardKey key : keys_.feed(bytes)) {
    if (key == BoardKey::kQuit) {
      quit_ = true;
      watcher_.interrupt();
      continue;
    }
    std::lock_guard lock(mutex_);
    switch (key) {
      case BoardKey::kUp:
        board_.follow_previous();
        break;
      case BoardKey::kDown:
        board_.follow_next();
        break;
      case BoardKey::kNextWithOutput:
        board_.follow_next_with_output();
        break;
      case BoardKey::kPreviousWithOutput:
        board_.follow_previous_with_output();
        break;
      case BoardKey::kQuit:
        break;
    }
    dirty_ = true;
  }
}

void LiveBoard::draw_now() {
  dirty_ = false;
  const ScreenSize size = screen_.size();
  std::vector<std::string> lines;
  {
    std::lock_guard lock(mutex_);
    lines = board_.render(size.rows, size.cols);
  }
  screen_.draw(lines);  // outside the lock: a slow terminal never holds up the stream
}

void LiveBoard::draw_loop() {
  // The window size signal comes to this thread (TerminalScreen blocks it
  // in the thread that follows the stream).
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  pthread_sigmask(SIG_UNBLOCK, &winch, nullptr);
  bool keys_open = screen_.reads_keys();
  Clock::time_point last_frame = Clock::now() - std::chrono::milliseconds(kBoardFrameMs);
  while (!stopping_) {
    int64_t wait = dirty_ ? std::max<int64_t>(0, kBoardFrameMs - ms_since(last_frame)) : -1;
    if (wake_pipe_[0] < 0 && wait < 0) wait = kBoardFrameMs;  // no pipe to wake us: look again
    pollfd fds[3] = {{wake_pipe_[0], POLLIN, 0},
                     {screen_.resize_fd(), POLLIN, 0},
                     {keys_open ? 0 : -1, POLLIN, 0}};
    if (::poll(fds, 3, static_cast<int>(wait)) < 0 && errno != EINTR) break;
    if (fds[0].revents) drain(wake_pipe_[0]);
    if (fds[1].revents) {
      screen_.take_resize();
      dirty_ = true;
    }
    if (fds[2].revents) {
      char bytes[64];
      const ssize_t n = ::read(0, bytes, sizeof bytes);
      if (n > 0) {
        on_keys(std::string_view(bytes, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        keys_open = false;  // stdin closed: the board goes on without keys
      }
    }
    if (dirty_ && ms_since(last_frame) >= kBoardFrameMs) {
      draw_now();
      last_frame = Clock::now();
    }
  }
  draw_now();  // the last frame, with everything
}

}  // namespace tether::cli
