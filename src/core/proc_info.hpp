// Facts about processes from /proc (Linux).
//
// A pid alone does not identify a process: after a crash and restart it may
// belong to someone else. The start time (/proc/PID/stat field 22, clock
// ticks since boot) together with the boot id does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tether::core {

std::optional<uint64_t> process_start_ticks(int pid);
// /proc/sys/kernel/random/boot_id, or empty if unreadable.
std::string boot_id();

}  // namespace tether::core
