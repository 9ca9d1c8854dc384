// TaskLimits: what one attempt may use of the host, enforced by the kernel
// through the attempt's own cgroup v2 (docs/protocol.md 3, "limits";
// docs/operations.md "Cgroups"). Each is optional; none set: no limit.
//
// In JSON, the task's "limits" object:
//   {"memory_max": BYTES, "cpu_max": CPUS, "pids_max": COUNT}
// - memory_max: bytes of memory (and no swap) for all the task's processes
//   together, at least 1 MiB; written to memory.max (and memory.swap.max 0).
//   A task that needs more is killed by the kernel's OOM killer, and its
//   final says so ("limit_exceeded": "memory_max").
// - cpu_max: CPUs, a number from 0.01 to 1024 in steps of 0.01 (0.5 = half
//   of one CPU); written to cpu.max as a quota per 100 ms period.
// - pids_max: processes and threads alive at once, 1 to 4,194,304; written
//   to pids.max (a fork beyond it fails with EAGAIN).
// An agent that cannot enforce a limit the task asks for (no delegated cgroup
// v2, or its controller not available) fails the attempt before it starts,
// naming the limit: a limit is never silently ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"

namespace tether::protocol {

inline constexpr uint64_t kMinMemoryMax = 1 << 20;
inline constexpr uint64_t kMaxMemoryMax = uint64_t{1} << 50;  // 1 PiB
inline constexpr uint32_t kMinCpuMaxHundredths = 1;           // 0.01 CPU
inline constexpr uint32_t kMaxCpuMaxHundredths = 1024 * 100;  // 1024 CPUs
inline constexpr uint64_t kMaxPidsMax = 4194304;              // the kernel's PID_MAX_LIMIT

struct TaskLimits {
  std::optional<uint64_t> memory_max;          // bytes
  std::optional<uint32_t> cpu_max_hundredths;  // hundredths of a CPU
  std::optional<uint64_t> pids_max;            // processes and threads

  bool any() const { return memory_max || cpu_max_hundredths || pids_max; }
  bool operator==(const TaskLimits&) const = default;
};

// The ranges above; errors ("invalid_field") name the field as
// "task.limits.memory_max".
Result<void> validate_limits(const TaskLimits& limits);

// The "limits" member of `task`, if there is one (types only: call
// validate_limits after). Errors name the field.
Result<TaskLimits> read_limits(const JsonObjectReader& task);
// Writes "limits": {...} into an open object, only if any limit is set.
void write_limits(JsonWriter& json, const TaskLimits& limits);
// The limits object alone ("{}" for none), as the hub stores it; read back
// with read_limits_json.
std::string limits_json(const TaskLimits& limits);
Result<TaskLimits> read_limits_json(std::string_view json);

// One limit as people type it on a command line (`tether run --memory-max
// 512M`, `tether-agent exec --cpu-max 0.5`): `limit` is "memory_max" (bytes,
// K/M/G/T suffixes), "cpu_max" (CPUs) or "pids_max" (a count), checked
// against the ranges above. Errors ("invalid_field") name the limit and
// quote the text.
Result<void> set_limit(std::string_view limit, std::string_view text, TaskLimits& limits);

// CPUs as JSON and people write them: "0.5", "1.5", "2" (at most two
// decimals, no sign, no exponent). Nothing for anything else.
std::optional<uint32_t> parse_cpus_hundredths(std::string_view text);
std::string format_cpus(uint32_t hundredths);
// Bytes as people type them: a count with an optional K, M, G or T suffix
// (powers of 1024, like systemd's MemoryMax=); nothing for anything else.
std::optional<uint64_t> parse_byte_size(std::string_view text);
// "512 MiB", "1.5 GiB", "1000 bytes", for messages.
std::string format_byte_size(uint64_t bytes);

}  // namespace tether::protocol
