#include "cli/run_follower.hpp"
#include "cli/fd_writer.hpp"

#include <unistd.h>

#include <cerrno>

#include "cli/printable.hpp"
#include "core/url.hpp"
#include "protocol/report_json.hpp"

namespace tether::cli {

namespace {

Error invalid_event(const std::string& type, const std::string& why) {
  return make_error(Errc::kProtocol, "sse_invalid", "bad " + type + " event: " + why);
}

}  // namespace

std::string task_id_of_attempt(const std::string& attempt_id) {
  const size_t at = attempt_id.rfind("-a");
  if (at == std::string::npos || at == 0 || at + 2 == attempt_id.size()) return attempt_id;
  for (size_t i = at + 2; i < attempt_id.size(); ++i) {
    if (attempt_id[i] < '0' || attempt_id[i] > '9') return attempt_id;
  }
  return attempt_id.substr(0, at);
}

bool is_terminal_task_state(std::string_view state) {
  return state == "succeeded" || state == "failed" || state == "timed_out" ||
         state == "cancelled" || state == "rejected" || state == "lost" || state == "skipped";
}

RunFollower::RunFollower(HubClient& client, protocol::RunView run, bool show_output, bool notes,
                         LiveBoard* board)
    : client_(client),
      run_id_(run.id),
      show_output_(show_output),
      notes_(notes && !board),
      board_(board),
      lines_([this](int fd, std::string_view bytes) { write(fd, bytes); }),
      stream_(client_,
              "/api/v1/runs/" + core::url_encode(run_id_) + "/events" +
                  (show_output_ ? "" : "?output=0"),
              true, [this](const SseEvent& event) { return on_event(event); }) {
  outcome_.state = run.state;
  for (const auto& task : run.tasks)
    agents_[task.task_id] = task.agent;
}

void RunFollower::write(int fd, std::string_view bytes) {
  if (fd == 1 && outcome_.stdout_closed) return;
  if (!write_all(fd, bytes) && fd == 1) {
    outcome_.stdout_closed = true;  // stop: nobody reads us
  }
}

void RunFollower::note(const std::string& text) {
  if (!notes_) return;
  const std::string line = text + "\n";
  write_all(2, line);
}

std::string RunFollower::agent_of(const std::string& task_id) {
  if (auto it = agents_.find(task_id); it != agents_.end()) return it->second;
  if (looked_up_.insert(task_id).second) {
    // A task the view we have does not list: ask for the run again.
    if (auto reply = client_.get("/api/v1/runs/" + core::url_encode(run_id_)); reply) {
      if (auto view = protocol::decode_run_view(reply->body); view) {
        for (const auto& task : view->tasks)
          agents_[task.task_id] = task.agent;
      }
    }
    if (auto it = agents_.find(task_id); it != agents_.end()) return it->second;
  }
  return task_id;
}

Result<void> RunFollower::on_output(const protocol::JsonObjectReader& data) {
  auto attempt = data.required_string("attempt_id");
  if (!attempt) return invalid_event("output", attempt.error().message);
  auto chunk = protocol::read_output_fields(data);
  if (!chunk) return invalid_event("output", chunk.error().message);
  if (!show_output_) return {};
  const std::string task_id = task_id_of_attempt(*attempt);
  const int fd = chunk->stream == protocol::StreamName::kStdout ? 1 : 2;
  const std::string agent = agent_of(task_id);
  if (board_) {
    board_->update([&](RunBoard& board) {
      board.add_task(task_id, agent);
      board.on_output(task_id, fd, chunk->data);
    });
    return {};
  }
  lines_.add(task_id, agent, fd, chunk->data);
  return {};
}

void RunFollower::on_status(const protocol::JsonObjectReader& data) {
  auto task_id = data.optional_string("task_id");
  auto state = data.optional_string("state");
  if (!task_id || !*task_id || !state || !*state) return;
  if (board_) {
    const std::string agent = agent_of(**task_id);
    board_->update([&](RunBoard& board) {
      board.add_task(**task_id, agent);
      board.on_status(**task_id, **state);
    });
  }
  // A task that ended writes nothing more: its last line goes out now.
  if (is_terminal_task_state(**state)) lines_.finish(**task_id);
}

void RunFollower::on_final(const protocol::JsonObjectReader& data) {
  auto attempt = data.optional_string("attempt_id");
  if (!attempt || !*attempt) return;
  const std::string task_id = task_id_of_attempt(**attempt);
  lines_.finish(task_id);
  if (!board_) return;
  // A report this CLI cannot read still ends the task's lines; no exit code.
  auto report = protocol::read_final_fields(data);
  board_->update([&](RunBoard& board) {
    board.on_final(task_id, report ? report->exit_code : std::nullopt,
                   report ? report->signal : std::nullopt);
  });
}

void RunFollower::on_gap(const protocol::JsonObjectReader& data) {
  if (!show_output_) return;
  auto attempt = data.optional_string("attempt_id");
  auto length = data.optional_uint("length");
  const std::string task_id = attempt && *attempt ? task_id_of_attempt(**attempt) : "";
  const uint64_t dropped = length && *length ? **length : 0;
  if (board_) {
    if (task_id.empty()) return;
    const std::string agent = agent_of(task_id);
    board_->update([&](RunBoard& board) {
      board.add_task(task_id, agent);
      board.on_gap(task_id, dropped);
    });
    return;
  }
  note("[tether] " + printable(agent_of(task_id)) + ": " + std::to_string(dropped) +
       " bytes of output were dropped by the agent here");
}

void RunFollower::on_run(const protocol::JsonObjectReader& data) {
  auto state = data.optional_string("state");
  if (!state || !*state) return;
  outcome_.state = **state;
  auto why = data.optional_string("note");
  if (board_) {
    const std::string text = why && *why ? **why : "";
    board_->update([&](RunBoard& board) { board.on_run(**state, text); });
  }
  note("[tether] run " + printable(run_id_) + " " + printable(**state) +
       (why && *why && !(*why)->empty() ? ": " + printable(**why) : ""));
}

Result<void> RunFollower::on_event(const SseEvent& event) {
  if (event.type == "end") {
    outcome_.ended = true;
    lines_.finish_all();
    return {};
  }
  auto document = protocol::parse_json_object(event.data, "event");
  if (!document) return invalid_event(event.type, document.error().message);
  protocol::JsonObjectReader data(*document, "event");
  if (event.type == "output") return on_output(data);
  if (event.type == "status") {
    on_status(data);
  } else if (event.type == "final") {
    on_final(data);
  } else if (event.type == "run") {
    on_run(data);
  } else if (event.type == "gap") {
    on_gap(data);
  }
  return {};
}

Result<RunFollowOutcome> RunFollower::run(const std::atomic<bool>& interrupted,
                                          core::HttpCallControl& control) {
  outcome_.interrupted = false;
  TETHER_TRY(followed, stream_.run(interrupted, control,
                                   [this] { return outcome_.ended || outcome_.stdout_closed; }));
  outcome_.interrupted = interrupted.load() && !outcome_.ended;
  return outcome_;
}

}  // namespace tether::cli
