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
      if (interrupted_.exchange(true)) _exit(kExitInterrupted);
      control_.load()->stop();
    }
  });
  thread_.detach();
}

}  // namespace tether::cli
