#include "cli/run_view_text.hpp"

#include "cli/printable.hpp"
#include "cli/run_summary.hpp"
#include "protocol/json_reader.hpp"

namespace tether::cli {

namespace {

std::string clipped(std::string text, size_t width) {
  if (text.size() > width) text = text.substr(0, width - 3) + "...";
  return text;
}

// "selector role=web" or the names, clipped to `width`.
std::string target_text(const protocol::RunView& run, size_t width) {
  if (!run.selector.empty()) return clipped(printable(run.selector), width);
  std::string names;
  for (const auto& name : run.agents)
    names += (names.empty() ? "" : ",") + name;
  return clipped(printable(names), width);
}

// The cells, each but the last padded to its width, separated by a space.
std::string row(const std::vector<std::string>& cells, const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    line += cells[i];
    if (i + 1 == cells.size()) break;
    const size_t width = i < widths.size() ? widths[i] : 0;
    line += std::string(cells[i].size() < width ? width - cells[i].size() : 0, ' ') + " ";
  }
  while (!line.empty() && line.back() == ' ')
    line.pop_back();  // an empty last cell
  return line + "\n";
}

std::string settings_text(const protocol::RunView& run) {
  std::string text = "max_concurrency " + std::to_string(run.max_concurrency);
  text += ", max_errors " + (run.max_errors ? std::to_string(*run.max_errors) : "none");
  if (run.canary) text += ", canary " + std::to_string(run.canary);
  text += ", offline_timeout " + std::to_string(run.offline_timeout_s) + "s";
  if (run.cancel_on_error) text += ", cancel_on_error";
  if (run.lost_is_error) text += ", lost_is_error";
  return text;
}

}  // namespace

std::string run_command_text(const protocol::RunView& run) {
  auto document = protocol::parse_json_object(run.command_json, "command");
  if (!document) return "";
  const rapidjson::Value& command = *document;  // const: clang rejects the mutable iterator
  std::string text;
  if (auto shell = command.FindMember("shell");
      shell != command.MemberEnd() && shell->value.IsString()) {
    return shell->value.GetString();
  }
  if (auto argv = command.FindMember("argv");
      argv != command.MemberEnd() && argv->value.IsArray()) {
    for (const auto& arg : argv->value.GetArray()) {
      if (arg.IsString()) text += (text.empty() ? "" : " ") + std::string(arg.GetString());
    }
  }
  return text;
}

std::string run_list_text(const std::vector<protocol::RunView>& runs) {
  const std::vector<size_t> widths = {20, 10, 28, 40};
  std::string out = row({"RUN", "STATE", "AGENTS", "TASKS", "CREATED"}, widths);
  for (const auto& run : runs) {
    out += row({printable(run.id), printable(run.state), target_text(run, 28),
                clipped(run_counts_text(run), 40), printable(run.created_at)},
               widths);
  }
  return out;
}

std::string run_view_text(const protocol::RunView& run) {
  std::string out = "run       " + printable(run.id) + "\n";
  out += "state     " + printable(run.state) +
         (run.stop_reason.empty() ? "" : ": " + printable(run.stop_reason)) + "\n";
  out += std::string(run.selector.empty() ? "agents    " : "selector  ") + target_text(run, 4096) +
         "\n";
  out += "command   " + clipped(printable(run_command_text(run)), 200) + "\n";
  out += "settings  " + settings_text(run) + "\n";
  out += "errors    " + std::to_string(run.errors) + "\n";
  out += "created   " + printable(run.created_at) + "\n";
  if (!run.finished_at.empty()) out += "finished  " + printable(run.finished_at) + "\n";
  out += "tasks     " + run_counts_text(run) + "\n\n";
  const std::vector<size_t> widths = {20, 10, 20, 5, 10, 10, 9};
  out += row({"AGENT", "STATE", "TASK", "EXIT", "STDOUT", "STDERR", "DURATION", "NOTE"}, widths);
  for (const auto& task : run.tasks) {
    const int64_t ms = task_duration_ms(task);
    out += row(
        {printable(task.agent), printable(task.state),
         task.task_id.empty() ? "-" : printable(task.task_id),
         task.exit_code ? std::to_string(*task.exit_code) : "-", std::to_string(task.stdout_bytes),
         std::to_string(task.stderr_bytes), ms < 0 ? "-" : duration_text(ms), printable(task.note)},
        widths);
  }
  return out;
}

}  // namespace tether::cli
