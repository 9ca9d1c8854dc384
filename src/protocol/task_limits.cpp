#include "protocol/task_limits.hpp"

#include <cmath>
#include <cstdio>

namespace tether::protocol {

namespace {

Error invalid(const std::string& field, const std::string& reason) {
  return make_error(Errc::kInvalid, "invalid_field", "task.limits." + field + ": " + reason);
}

// A count of decimal digits, without overflow; nothing for anything else.
std::optional<uint64_t> parse_count(std::string_view digits) {
  if (digits.empty() || digits.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

Result<void> validate_limits(const TaskLimits& limits) {
  if (limits.memory_max &&
      (*limits.memory_max < kMinMemoryMax || *limits.memory_max > kMaxMemoryMax)) {
    return invalid("memory_max", "must be from 1 MiB (1048576) to 1 PiB bytes, got " +
                                     std::to_string(*limits.memory_max));
  }
  if (limits.cpu_max_hundredths && (*limits.cpu_max_hundredths < kMinCpuMaxHundredths ||
                                    *limits.cpu_max_hundredths > kMaxCpuMaxHundredths)) {
    return invalid("cpu_max", "must be from 0.01 to 1024 CPUs");
  }
  if (limits.pids_max && (*limits.pids_max < 1 || *limits.pids_max > kMaxPidsMax)) {
    return invalid("pids_max", "must be from 1 to " + std::to_string(kMaxPidsMax) + ", got " +
                                   std::to_string(*limits.pids_max));
  }
  return {};
}

Result<TaskLimits> read_limits(const JsonObjectReader& task) {
  TaskLimits limits;
  TETHER_TRY(object, task.optional_object("limits"));
  if (!*object) return limits;
  JsonObjectReader reader(**object, task.path() + ".limits");
  TETHER_TRY(memory, reader.optional_uint("memory_max"));
  limits.memory_max = *memory;
  TETHER_TRY(pids, reader.optional_uint("pids_max"));
  limits.pids_max = *pids;
  if (const auto* cpu = reader.find("cpu_max"); cpu && !cpu->IsNull()) {
    if (!cpu->IsNumber()) {
      return reader.field_error(
          "cpu_max", std::string("expected a number of CPUs, got ") + json_type_name(*cpu));
    }
    const double cpus = cpu->GetDouble();
    const double hundredths = std::round(cpus * 100);
    if (!(cpus > 0) || hundredths < kMinCpuMaxHundredths || hundredths > kMaxCpuMaxHundredths ||
        std::fabs(hundredths - cpus * 100) > 1e-6) {
      return reader.field_error("cpu_max", "must be from 0.01 to 1024 CPUs, in steps of 0.01");
    }
    limits.cpu_max_hundredths = static_cast<uint32_t>(hundredths);
  }
  return limits;
}

void write_limits(JsonWriter& json, const TaskLimits& limits) {
  if (!limits.any()) return;
  json.key("limits");
  json.raw(limits_json(limits));
}

std::string limits_json(const TaskLimits& limits) {
  JsonWriter json;
  json.begin_object();
  if (limits.memory_max) json.field("memory_max", *limits.memory_max);
  if (limits.cpu_max_hundredths) {
    json.key("cpu_max");
    json.raw(format_cpus(*limits.cpu_max_hundredths));
  }
  if (limits.pids_max) json.field("pids_max", *limits.pids_max);
  json.end_object();
  return json.str();
}

Result<TaskLimits> read_limits_json(std::string_view text) {
  TETHER_TRY(document, parse_json_object(text, "task.limits"));
  rapidjson::Document wrapper;
  wrapper.SetObject();
  rapidjson::Value copy(*document, wrapper.GetAllocator());
  wrapper.AddMember("limits", copy, wrapper.GetAllocator());
  return read_limits(JsonObjectReader(wrapper, "task"));
}

Result<void> set_limit(std::string_view limit, std::string_view text, TaskLimits& limits) {
  const std::string name(limit);
  const std::string quoted = "'" + std::string(text) + "'";
  TaskLimits changed = limits;
  if (name == "memory_max") {
    changed.memory_max = parse_byte_size(text);
    if (!changed.memory_max) {
      return invalid(name, quoted + " is not a size (bytes, or a count with K, M, G or T)");
    }
  } else if (name == "cpu_max") {
    changed.cpu_max_hundredths = parse_cpus_hundredths(text);
    if (!changed.cpu_max_hundredths) {
      return invalid(name, quoted + " is not a number of CPUs (0.5, 2, 1.25)");
    }
  } else if (name == "pids_max") {
    changed.pids_max = parse_count(text);
    if (!changed.pids_max) return invalid(name, quoted + " is not a count");
  } else {
    return invalid(name, "no such limit (memory_max, cpu_max, pids_max)");
  }
  TETHER_TRY(valid, validate_limits(changed));
  limits = changed;
  return {};
}

std::optional<uint32_t> parse_cpus_hundredths(std::string_view text) {
  const size_t dot = text.find('.');
  auto whole = parse_count(text.substr(0, dot));
  if (!whole || *whole > 1024) return std::nullopt;
  uint64_t hundredths = *whole * 100;
  if (dot != std::string_view::npos) {
    const std::string_view fraction = text.substr(dot + 1);
    if (fraction.empty() || fraction.size() > 2) return std::nullopt;
    auto digits = parse_count(fraction);
    if (!digits) return std::nullopt;
    hundredths += fraction.size() == 1 ? *digits * 10 : *digits;
  }
  return static_cast<uint32_t>(hundredths);
}

std::string format_cpus(uint32_t hundredths) {
  std::string text = std::to_string(hundredths / 100);
  const uint32_t fraction = hundredths % 100;
  if (fraction == 0) return text;
  text += '.';
  text += static_cast<char>('0' + fraction / 10);
  if (fraction % 10) text += static_cast<char>('0' + fraction % 10);
  return text;
}

std::optional<uint64_t> parse_byte_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  unsigned shift = 0;
  switch (text.back()) {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    case 'T':
      shift = 40;
      break;
    default:
      break;
  }
  if (shift) text.remove_suffix(1);
  auto count = parse_count(text);
  if (!count || (shift && *count > (UINT64_MAX >> shift))) return std::nullopt;
  return *count << shift;
}

std::string format_byte_size(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, value == std::floor(value) ? "%.0f %s" : "%.1f %s", value,
                kUnits[unit]);
  return text;
}

}  // namespace tether::protocol
