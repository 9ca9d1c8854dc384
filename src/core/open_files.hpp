// The process's budget of open files (RLIMIT_NOFILE), which every
// connection, pipe and database handle draws from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace tether::core {

// What max_connections = 0 means: the soft limit of open files
// (RLIMIT_NOFILE) less a reserve for everything else the process opens
// (storage, logs, pipes): a quarter of the limit, at most 256. The
// listener then never runs into EMFILE through connections alone.
size_t default_max_connections();

// Raises the soft limit of open files to the hard limit (as systemd's
// LimitNOFILE= or `ulimit -Hn` allow); returns {before, after}.
std::pair<uint64_t, uint64_t> raise_open_files_limit();

}  // namespace tether::core
