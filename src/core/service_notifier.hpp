// ServiceNotifier: tells systemd how the service is doing (sd_notify(3)).
//
// Under a unit with Type=notify, systemd sets NOTIFY_SOCKET; ready() marks
// the service started (systemctl start returns then, not before), status()
// sets the line `systemctl status` shows, stopping() says a graceful stop
// has begun. With WatchdogSec= set, systemd also sets WATCHDOG_USEC and
// restarts the service if it is not pinged within that time: the notifier
// pings from a loop timer at half the interval, so a wedged loop (the thing
// the watchdog exists to catch) stops the pings. Outside systemd every call
// does nothing and no timer runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/loop.hpp"
#include "core/timer.hpp"

namespace tether::core {

class ServiceNotifier {
 public:
  explicit ServiceNotifier(Loop& loop);
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // READY=1 with a status line; starts the watchdog pings if asked for.
  // `refresh`, if given, makes the status line anew at every watchdog ping.
  void ready(const std::string& status, std::function<std::string()> refresh = {});
  // STATUS=...; sent only when it changed.
  void status(const std::string& status);
  // STOPPING=1; the watchdog pings stop with it (systemd stops watching too).
  void stopping(const std::string& status);

  // The watchdog interval systemd asked for, 0 if none.
  uint64_t watchdog_interval_ms() const { return watchdog_ms_; }

 private:
  void ping_watchdog();

  bool enabled_ = false;
  uint64_t watchdog_ms_ = 0;
  std::string last_status_;
  std::function<std::string()> refresh_;
  Timer watchdog_timer_;
};

}  // namespace tether::core
