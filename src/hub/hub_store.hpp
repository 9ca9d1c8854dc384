// The hub's database: hub.db in the data directory, on core::SqliteStore
// (WAL, group commit, after-commit actions).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "core/sqlite_store.hpp"

namespace tether::hub {

enum class SyncMode { kNormal, kFull };

// Creates the directory (0700), opens hub.db and creates the schema if needed.
// `busy_timeout_ms`: how long a write waits for another process's lock. The
// serving hub keeps it short (its loop thread waits, and it retries busy
// work); one-shot commands (`tether-hub agent add`) can afford to wait.
Result<std::unique_ptr<core::SqliteStore>> open_hub_store(const std::string& data_dir,
                                                          SyncMode sync, int busy_timeout_ms);

// Milliseconds since the epoch (wall clock), for lease arithmetic.
int64_t wall_clock_ms();

}  // namespace tether::hub
