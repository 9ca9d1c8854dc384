#include "cli/terminal_screen.hpp"
#include "cli/fd_writer.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace tether::cli {

namespace {

// The write end of the running screen's resize pipe, for the handler.
std::atomic<int> resize_write_fd{-1};

void on_window_change(int) {
  const int saved_errno = errno;
  const int fd = resize_write_fd.load();
  if (fd >= 0) {
    const char byte = 'w';
    [[maybe_unused]] const ssize_t written = ::write(fd, &byte, 1);  // full pipe: one is enough
  }
  errno = saved_errno;
}

// The alternate screen (the first frame clears it), the cursor hidden, no
// automatic wrapping.
constexpr std::string_view kTake = "\x1b[?1049h\x1b[?25l\x1b[?7l";
// Wrapping and the cursor back, then the screen as it was.
constexpr std::string_view kGiveBack = "\x1b[?7h\x1b[?25h\x1b[?1049l";

}  // namespace

bool TerminalScreen::usable() {
  const char* term = std::getenv("TERM");
  return ::isatty(1) && ::isatty(2) && term && *term && std::strcmp(term, "dumb") != 0 &&
         ::tcgetpgrp(1) == ::getpgrp();
}

TerminalScreen::TerminalScreen() {
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  sigset_t before;
  pthread_sigmask(SIG_BLOCK, &winch, &before);
  winch_was_blocked_ = sigismember(&before, SIGWINCH) == 1;
  if (::pipe2(resize_pipe_, O_NONBLOCK | O_CLOEXEC) == 0) {
    resize_write_fd = resize_pipe_[1];
    struct sigaction action {};
    action.sa_handler = on_window_change;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGWINCH, &action, &previous_winch_);
  } else {
    resize_pipe_[0] = resize_pipe_[1] = -1;
  }
  if (::isatty(0) && ::tcgetpgrp(0) == ::getpgrp() && ::tcgetattr(0, &saved_) == 0) {
    termios keys = saved_;
    keys.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    keys.c_cc[VMIN] = 1;
    keys.c_cc[VTIME] = 0;
    keys.c_cc[VSUSP] = _POSIX_VDISABLE;
    keys.c_cc[VQUIT] = _POSIX_VDISABLE;
    reads_keys_ = ::tcsetattr(0, TCSANOW, &keys) == 0;
  }
  broken_ = !write_all(1, kTake);
}

TerminalScreen::~TerminalScreen() {
  restore();
  if (resize_pipe_[0] >= 0) {
    ::sigaction(SIGWINCH, &previous_winch_, nullptr);
    resize_write_fd = -1;
    ::close(resize_pipe_[0]);
    ::close(resize_pipe_[1]);
  }
  if (!winch_was_blocked_) {
    sigset_t winch;
    sigemptyset(&winch);
    sigaddset(&winch, SIGWINCH);
    pthread_sigmask(SIG_UNBLOCK, &winch, nullptr);
  }
}

void TerminalScreen::take_resize() {
  char bytes[64];
  while (resize_pipe_[0] >= 0 && ::read(resize_pipe_[0], bytes, sizeof bytes) > 0) {
  }
  std::lock_guard lock(output_);
  clear_next_ = true;
}

ScreenSize TerminalScreen::size() const {
  ScreenSize size;
  winsize window{};
  if (::ioctl(1, TIOCGWINSZ, &window) == 0 && window.ws_row > 0 && window.ws_col > 0) {
    size.rows = window.ws_row;
    size.cols = window.ws_col;
  }
  return size;
}

void TerminalScreen::draw(const std::vector<std::string>& lines) {
  std::lock_guard lock(output_);
  if (restored_ || broken_) return;
  std::string frame;
  if (clear_next_) {
    frame = "\x1b[2J";
    shown_.clear();
    clear_next_ = false;
  }
  for (size_t row = 0; row < lines.size(); ++row) {
    if (row < shown_.size() && shown_[row] == lines[row]) continue;
    frame += "\x1b[" + std::to_string(row + 1) + ";1H\x1b[2K" + lines[row];
  }
  if (lines.size() < shown_.size())
    frame += "\x1b[" + std::to_string(lines.size() + 1) + ";1H\x1b[J";
  shown_ = lines;
  if (!frame.empty() && !write_all(1, frame)) broken_ = true;
}

void TerminalScreen::restore() {
  std::unique_lock lock(output_, std::defer_lock);
  // A frame stuck behind a stopped terminal must not keep the CLI from exiting.
  (void)lock.try_lock_for(std::chrono::milliseconds(500));
  if (restored_.exchange(true)) return;
  write_all(1, kGiveBack);
  if (reads_keys_) {
    ::tcflush(0, TCIFLUSH);  // keys meant for the board are not the shell's
    ::tcsetattr(0, TCSANOW, &saved_);
  }
}

}  // namespace tether::cli
