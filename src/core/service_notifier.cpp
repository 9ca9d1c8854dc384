#include "core/service_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace tether::core {

ServiceNotifier::ServiceNotifier(Loop& loop) : watchdog_timer_(loop) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  // > 0 only if WATCHDOG_USEC is set and WATCHDOG_PID (if set) is us.
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_ms_ = usec / 1000;
}

void ServiceNotifier::ready(const std::string& status, std::function<std::string()> refresh) {
  if (!enabled_) return;
  refresh_ = std::move(refresh);
  last_status_ = status;
  const std::string message = "READY=1\nSTATUS=" + status;
  sd_notify(0, message.c_str());
  if (watchdog_ms_ > 0) ping_watchdog();
}

void ServiceNotifier::status(const std::string& status) {
  if (!enabled_ || status == last_status_) return;
  last_status_ = status;
  const std::string message = "STATUS=" + status;
  sd_notify(0, message.c_str());
}

void ServiceNotifier::stopping(const std::string& status) {
  if (!enabled_) return;
  watchdog_timer_.stop();
  last_status_ = status;
  const std::string message = "STOPPING=1\nSTATUS=" + status;
  sd_notify(0, message.c_str());
}

void ServiceNotifier::ping_watchdog() {
  sd_notify(0, "WATCHDOG=1");
  if (refresh_) status(refresh_());
  // Half the interval: one late loop turn must not cost a restart.
  const uint64_t every = watchdog_ms_ / 2 > 0 ? watchdog_ms_ / 2 : 1;
  watchdog_timer_.start(every, [this] { ping_watchdog(); });
}

}  // namespace tether::core
