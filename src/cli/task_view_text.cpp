#include "cli/task_view_text.hpp"

#include <cstdarg>
#include <cstdio>

#include "cli/printable.hpp"

namespace tether::cli {

namespace {

__attribute__((format(printf, 1, 2))) std::string format(const char* pattern, ...) {
  va_list args;
  va_start(args, pattern);
  va_list again;
  va_copy(again, args);
  const int length = std::vsnprintf(nullptr, 0, pattern, args);
  va_end(args);
  std::string text(length > 0 ? static_cast<size_t>(length) : 0, '\0');
  std::vsnprintf(text.data(), text.size() + 1, pattern, again);
  va_end(again);
  return text;
}

}  // namespace

std::string task_view_text(const protocol::DecodedTask& decoded) {
  const protocol::TaskView& task = decoded.task;
  std::string out;
  out += format("task      %s\nagent     %s\nstate     %s\ncreated   %s\nupdated   %s\n",
                printable(task.id).c_str(), printable(task.agent).c_str(),
                printable(task.state).c_str(), printable(task.created_at).c_str(),
                printable(task.updated_at).c_str());
  if (!task.selector.empty()) out += format("pool      %s\n", printable(task.selector).c_str());
  std::string names;
  for (const auto& name : task.secret_names)
    names += (names.empty() ? "" : " ") + name;
  if (!names.empty()) out += format("secrets   %s\n", printable(names).c_str());
  std::string limits;
  if (task.limits.memory_max) {
    limits += "memory_max " + protocol::format_byte_size(*task.limits.memory_max);
  }
  if (task.limits.cpu_max_hundredths) {
    limits += std::string(limits.empty() ? "" : ", ") + "cpu_max " +
              protocol::format_cpus(*task.limits.cpu_max_hundredths) + " CPUs";
  }
  if (task.limits.pids_max) {
    limits += std::string(limits.empty() ? "" : ", ") + "pids_max " +
              std::to_string(*task.limits.pids_max);
  }
  if (!limits.empty()) out += format("limits    %s\n", limits.c_str());
  if (const auto& report = decoded.final_report) {
    const std::string exit = report->exit_code ? std::to_string(*report->exit_code)
                             : report->signal  ? "signal " + std::to_string(*report->signal)
                                               : "-";
    out += format("exit      %s\n", exit.c_str());
    for (const auto stream : {protocol::StreamName::kStdout, protocol::StreamName::kStderr}) {
      const auto& summary = report->summary(stream);
      out +=
          format("%-9s %llu bytes, sha256 %s\n", std::string(protocol::to_string(stream)).c_str(),
                 static_cast<unsigned long long>(summary.bytes), printable(summary.sha256).c_str());
    }
    if (!report->error.empty()) out += format("error     %s\n", printable(report->error).c_str());
    if (!report->limit_exceeded.empty()) {
      out += format("exceeded  %s\n", printable(report->limit_exceeded).c_str());
    }
    if (const auto& redacted = report->redactions) {
      out += format("redacted  %llu in stdout, %llu in stderr\n",
                    static_cast<unsigned long long>(redacted->stdout_count),
                    static_cast<unsigned long long>(redacted->stderr_count));
    }
  }
  if (task.output_verified) {
    out += format("verified  %s%s\n", *task.output_verified ? "yes" : "no",
                  task.verification_error.empty()
                      ? ""
                      : (" (" + printable(task.verification_error) + ")").c_str());
  }
  return out;
}

}  // namespace tether::cli
