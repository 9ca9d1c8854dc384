#include "cli/interrupt_watcher.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace tether::cli {

InterruptWatcher::InterruptWatcher() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set] {
    for (;;) {
      int signum = 0;
      if (sigwait(&set, &signum) != 0) continue;
      interrupt();
    }
  });
  thread_.detach();
}

void InterruptWatcher::interrupt() {
  if (interrupted_.exchange(true)) {
    // Held until _exit: the hook's owner cannot go away meanwhile.
    hook_mutex_.lock();
    if (before_exit_) before_exit_();
    _exit(kExitInterrupted);
  }
  if (auto* control = control_.load()) control->stop();
}

void InterruptWatcher::set_before_exit(std::function<void()> hook) {
  std::lock_guard lock(hook_mutex_);
  before_exit_ = std::move(hook);
}

}  // namespace tether::cli
