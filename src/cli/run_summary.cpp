#include "cli/run_summary.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdio>

#include "cli/output_tail.hpp"
#include "cli/printable.hpp"
#include "core/wall_clock.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/utf8.hpp"

namespace tether::cli {

namespace {

constexpr size_t kMaxShownLineBytes = 200;

}  // namespace

std::string run_counts_text(const protocol::RunView& run) {
  std::map<std::string, uint64_t> counts;
  if (run.tasks.empty()) {
    counts = run.counts;
  } else {
    for (const auto& task : run.tasks)
      ++counts[task.state];
  }
  std::vector<std::string> order = protocol::run_task_states();
  for (const auto& [state, count] : counts) {
    if (std::find(order.begin(), order.end(), state) == order.end()) order.push_back(state);
  }
  std::string text;
  for (const auto& state : order) {
    auto it = counts.find(state);
    if (it == counts.end() || it->second == 0) continue;
    text += (text.empty() ? "" : ", ") + std::to_string(it->second) + " " + printable(state);
  }
  return text.empty() ? "no tasks" : text;
}

int64_t task_duration_ms(const protocol::RunTaskView& task) {
  if (task.started_at.empty() || task.finished_at.empty()) return -1;
  const int64_t started = core::parse_utc_ms(task.started_at);
  const int64_t finished = core::parse_utc_ms(task.finished_at);
  return started < 0 || finished < started ? -1 : finished - started;
}

namespace {

std::string slowest_text(const protocol::RunView& run) {
  std::vector<std::pair<int64_t, const protocol::RunTaskView*>> timed;
  for (const auto& task : run.tasks) {
    if (const int64_t ms = task_duration_ms(task); ms >= 0) timed.emplace_back(ms, &task);
  }
  std::stable_sort(timed.begin(), timed.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string text;
  for (size_t i = 0; i < timed.size() && i < 3; ++i) {
    text +=
        (i ? ", " : "") + printable(timed[i].second->agent) + " " + duration_text(timed[i].first);
  }
  return text;
}

std::string shown_line(const std::string& line) {
  std::string text = printable(line);
  if (text.size() > kMaxShownLineBytes) text = text.substr(0, kMaxShownLineBytes - 3) + "...";
  return text;
}

// "edge-2 failed, exit 3 (note)" and its last lines.
std::string host_text(const protocol::RunTaskView& task, const RunTails& tails) {
  std::string text = "  " + printable(task.agent) + " " + printable(task.state);
  if (task.exit_code) text += ", exit " + std::to_string(*task.exit_code);
  if (!task.note.empty()) text += (task.exit_code ? " (" : ": ") + printable(task.note);
  if (!task.note.empty() && task.exit_code) text += ")";
  text += "\n";
  if (auto it = tails.by_task.find(task.task_id); it != tails.by_task.end()) {
    for (const auto& line : it->second.stdout_lines)
      text += "    out| " + shown_line(line) + "\n";
    for (const auto& line : it->second.stderr_lines)
      text += "    err| " + shown_line(line) + "\n";
  }
  return text;
}

}  // namespace

std::string duration_text(int64_t ms) {
  char text[32];
  if (ms < 60'000) {
    std::snprintf(text, sizeof text, "%.1fs", static_cast<double>(ms) / 1000);
  } else if (ms < 3'600'000) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>(ms / 1000 % 60));
  } else {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>(ms / 60'000 % 60));
  }
  return text;
}

std::vector<const protocol::RunTaskView*> unsuccessful_tasks(const protocol::RunView& run) {
  std::vector<const protocol::RunTaskView*> tasks;
  for (const auto& task : run.tasks) {
    if (task.state != "succeeded") tasks.push_back(&task);
  }
  return tasks;
}

RunTails fetch_tails(HubClient& client, const protocol::RunView& run, size_t max_tasks) {
  RunTails tails;
  const auto tasks = unsuccessful_tasks(run);
  for (size_t i = 0; i < tasks.size() && i < max_tasks; ++i) {
    const protocol::RunTaskView& task = *tasks[i];
    if (task.task_id.empty() || task.stdout_bytes + task.stderr_bytes == 0) continue;
    HostTail tail;
    auto out =
        fetch_last_lines(client, task.task_id, "stdout", task.stdout_bytes, kSummaryLastLines);
    auto err =
        out ? fetch_last_lines(client, task.task_id, "stderr", task.stderr_bytes, kSummaryLastLines)
            : out;
    if (!out || !err) {
      tails.error = (!out ? out : err).error().message;
      break;
    }
    tail.stdout_lines = std::move(*out);
    tail.stderr_lines = std::move(*err);
    tails.by_task[task.task_id] = std::move(tail);
  }
  return tails;
}

std::string run_summary_text(const protocol::RunView& run, const RunTails& tails,
                             size_t max_hosts) {
  std::string text = "[tether] run " + printable(run.id) + " " + printable(run.state);
  if (!run.stop_reason.empty()) text += ": " + printable(run.stop_reason);
  text += "\n  " + run_counts_text(run) + "\n";
  if (const std::string slowest = slowest_text(run); !slowest.empty()) {
    text += "  slowest: " + slowest + "\n";
  }
  const auto tasks = unsuccessful_tasks(run);
  for (size_t i = 0; i < tasks.size() && i < max_hosts; ++i)
    text += host_text(*tasks[i], tails);
  if (tasks.size() > max_hosts) {
    text += "  ... and " + std::to_string(tasks.size() - max_hosts) +
            " more that did not succeed: tether run-status " + printable(run.id) + "\n";
  }
  if (!tails.error.empty()) text += "  (last lines unavailable: " + printable(tails.error) + ")\n";
  return text;
}

Result<std::string> run_json(std::string_view view_json, const protocol::RunView& run,
                             const RunTails& tails) {
  TETHER_TRY(document, protocol::parse_json_object(view_json, "run"));
  auto& allocator = document->GetAllocator();
  // HasMember, not FindMember: clang rejects comparing mutable member iterators.
  if (document->HasMember("tasks") && (*document)["tasks"].IsArray()) {
    for (auto& task : (*document)["tasks"].GetArray()) {
      if (!task.IsObject() || !task.HasMember("task_id") || !task["task_id"].IsString()) continue;
      const std::string id = task["task_id"].GetString();
      auto view = std::find_if(run.tasks.begin(), run.tasks.end(),
                               [&](const auto& t) { return t.task_id == id; });
      if (view == run.tasks.end() || view->state == "succeeded") continue;
      rapidjson::Value lines(rapidjson::kArrayType);
      if (auto tail = tails.by_task.find(id); tail != tails.by_task.end()) {
        for (const auto* stream : {&tail->second.stdout_lines, &tail->second.stderr_lines}) {
          for (const auto& line : *stream) {
            const std::string text = protocol::with_invalid_utf8_replaced(line, '?');
            lines.PushBack(
                rapidjson::Value(text.c_str(), static_cast<rapidjson::SizeType>(text.size()),
                                 allocator),
                allocator);
          }
        }
      }
      task.RemoveMember("last_lines");
      task.AddMember("last_lines", lines, allocator);
    }
  }
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  document->Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace tether::cli
