// The exit status of `tether run --selector/--agents` once the run ended
// (docs/cli.md, "Exit status of a fan-out run"):
//
//   0  every agent's task succeeded
//   1  every agent's task ran, and some did not succeed (failed,
//      timed_out, cancelled, rejected)
//   4  some agents' tasks did not run or were lost (skipped, lost, or
//      still not finished), or the run had no task at all; 4 wins over 1
//
// (2 bad usage, 3 hub unreachable or refused, 130 interrupted: main.cpp.)
#pragma once

#include "protocol/run_api.hpp"

namespace tether::cli {

inline constexpr int kExitRunSomeFailed = 1;
inline constexpr int kExitRunIncomplete = 4;

int run_exit_status(const protocol::RunView& run);

}  // namespace tether::cli
