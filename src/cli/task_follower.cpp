#include "cli/task_follower.hpp"
#include "cli/fd_writer.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include "cli/printable.hpp"
#include "cli/terminal_text.hpp"
#include "protocol/base64.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/report_json.hpp"

namespace tether::cli {

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int exit_status_for(const std::string& state,
                    const std::optional<protocol::FinalReport>& final_report) {
  if (state == "timed_out") return 124;
  if (state == "cancelled" || state == "skipped") return 125;
  if (state == "rejected") return 69;
  if (state == "lost") return 75;
  if (final_report) {
    if (final_report->signal) return 128 + static_cast<int>(*final_report->signal);
    if (final_report->exit_code) return static_cast<int>(*final_report->exit_code & 0xff);
    return 127;  // it never started
  }
  return state == "succeeded" ? 0 : 1;
}

TaskFollower::TaskFollower(HubClient& client, std::string task_id, bool follow, bool status_line)
    : client_(client),
      task_id_(std::move(task_id)),
      follow_(follow),
      status_line_(status_line),
      stdout_is_terminal_(::isatty(1) != 0),
      stderr_is_terminal_(::isatty(2) != 0),
      // One stream for every run(): following again (after a cancel)
      // resumes after the last event shown instead of showing all again.
      stream_(
          client_,
          "/api/v1/tasks/" + core::url_encode(task_id_) + "/events" + (follow_ ? "" : "?follow=0"),
          follow_, [this](const SseEvent& event) -> Result<void> {
            on_event(event);
            if (failure_) return *failure_;
            return {};
          }) {}

void TaskFollower::clear_status() {
  if (!status_drawn_) return;
  const char clear[] = "\r\033[K";
  write_all(2, std::string_view(clear, sizeof clear - 1));
  status_drawn_ = false;
}

void TaskFollower::draw_status(bool force) {
  // On a line the task left open, "\r" would start over its text.
  if (!status_line_ || outcome_.line_open) return;
  const int64_t now = now_ms();
  if (!force && now - last_draw_ms_ < 100) return;
  last_draw_ms_ = now;
  std::string line = "\r\033[K[tether] " + printable(task_id_) + " " +
                     printable(outcome_.state.empty() ? "waiting" : outcome_.state) +
                     (agent_.empty() ? "" : " on " + printable(agent_)) + " · out " +
                     human_bytes(bytes_out_) + " · err " + human_bytes(bytes_err_);
  write_all(2, line);
  status_drawn_ = true;
}

void TaskFollower::write_output(int fd, const std::string& bytes) {
  if (bytes.empty()) return;
  clear_status();
  if (!write_all(fd, bytes)) {
    if (fd == 1) outcome_.stdout_closed = true;  // stop: nobody reads us
    return;
  }
  (fd == 1 ? bytes_out_ : bytes_err_) += bytes.size();
  if ((fd == 1 && stdout_is_terminal_) || (fd == 2 && stderr_is_terminal_)) {
    outcome_.line_open = bytes.back() != '\n';
  }
  // Redraw only after a line ended, or the status would split the task's line.
  draw_status(false);
}

void TaskFollower::write_note(const std::string& text) {
  clear_status();
  const std::string line = (outcome_.line_open ? "\n" : "") + text + "\n";
  write_all(2, line);
  outcome_.line_open = false;
}

void TaskFollower::on_event(const SseEvent& event) {
  if (failure_) return;
  if (event.type == "end") {
    outcome_.ended = true;
    return;
  }
  auto document = protocol::parse_json_object(event.data, "event");
  if (!document) {
    failure_ = make_error(Errc::kProtocol, "sse_invalid",
                          "bad " + event.type + " event: " + document.error().message);
    return;
  }
  protocol::JsonObjectReader data(*document, "event");
  if (event.type == "output") {
    auto chunk = protocol::read_output_fields(data);
    if (!chunk) {
      failure_ = chunk.error();
      return;
    }
    write_output(chunk->stream == protocol::StreamName::kStdout ? 1 : 2, chunk->data);
  } else if (event.type == "status") {
    auto state = data.optional_string("state");
    if (state && *state) outcome_.state = **state;
    draw_status(true);
  } else if (event.type == "final") {
    auto report = protocol::read_final_fields(data);
    if (report) outcome_.final_report = std::move(*report);
  } else if (event.type == "gap") {
    auto length = data.optional_uint("length");
    if (status_line_) {
      write_note("[tether] " + std::to_string(length && *length ? **length : 0) +
                 " bytes of output were dropped by the agent here");
    }
  }
}

Result<FollowOutcome> TaskFollower::run(const std::atomic<bool>& interrupted,
                                        core::HttpCallControl& control) {
  if (auto task = client_.get("/api/v1/tasks/" + core::url_encode(task_id_)); task) {
    auto document = protocol::parse_json_object(task->body, "task");
    if (document) {
      auto agent = protocol::JsonObjectReader(*document, "task").optional_string("agent");
      if (agent && *agent) agent_ = **agent;
    }
  } else {
    return task.error();
  }
  auto followed = stream_.run(interrupted, control,
                              [this] { return outcome_.ended || outcome_.stdout_closed; });
  if (!followed) {
    clear_status();
    return followed.error();
  }
  clear_status();
  outcome_.interrupted = interrupted.load() && !outcome_.ended;
  return outcome_;
}

}  // namespace tether::cli
