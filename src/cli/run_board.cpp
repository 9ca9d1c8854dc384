#include "cli/run_board.hpp"

#include <algorithm>

#include "cli/printable.hpp"
#include "cli/terminal_text.hpp"

namespace tether::cli {

namespace {

// Lines of the followed host's output kept on screen before the rows of a
// large fleet take the rest.
constexpr size_t kMinOutputLines = 5;
constexpr size_t kMaxNameWidth = 24;
constexpr size_t kStateWidth = 10;  // "dispatched"
constexpr size_t kBytesWidth = 10;  // "1023.9 KiB"
constexpr size_t kTabStop = 8;
constexpr const char* kKeys = "keys: ↑↓ j k host · Tab n next with output · q stop following";

// Tabs to spaces up to the next stop (counted in bytes: exact for ASCII).
std::string expand_tabs(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t column = 0;
  for (const char byte : bytes) {
    if (byte == '\t') {
      const size_t spaces = kTabStop - column % kTabStop;
      out.append(spaces, ' ');
      column += spaces;
    } else {
      out.push_back(byte);
      column = byte == '\n' ? 0 : column + 1;
    }
  }
  return out;
}

}  // namespace

std::string board_line_text(std::string_view bytes, int fd, bool cut) {
  const char* prefix = fd == 1 ? "out| " : fd == 2 ? "err| " : "";
  return prefix + printable(expand_tabs(bytes)) + (cut ? "…" : "");
}

RunBoard::RunBoard(const protocol::RunView& run, RunBoardLimits limits)
    : limits_(limits), run_id_(run.id), run_state_(run.state), run_note_(run.stop_reason) {
  limits_.max_line_bytes = std::max<size_t>(limits_.max_line_bytes, 1);
  for (const auto& task : run.tasks) {
    add_task(task.task_id, task.agent);
    on_status(task.task_id, task.state);
  }
}

void RunBoard::add_task(const std::string& task_id, const std::string& agent) {
  if (by_task_.count(task_id)) return;
  by_task_[task_id] = hosts_.size();
  Host host;
  host.task_id = task_id;
  host.agent = agent;
  host.partial[0].fd = 1;
  host.partial[1].fd = 2;
  hosts_.push_back(std::move(host));
  ++counts_[hosts_.back().state];
  name_width_ = std::min(kMaxNameWidth, std::max(name_width_, display_width(printable(agent))));
}

RunBoard::Host* RunBoard::find(const std::string& task_id) {
  auto it = by_task_.find(task_id);
  return it == by_task_.end() ? nullptr : &hosts_[it->second];
}

void RunBoard::on_status(const std::string& task_id, const std::string& state) {
  Host* host = find(task_id);
  if (!host || host->state == state) return;
  if (auto it = counts_.find(host->state); it != counts_.end() && --it->second == 0) {
    counts_.erase(it);
  }
  host->state = state;
  ++counts_[state];
}

void RunBoard::on_output(const std::string& task_id, int fd, std::string_view bytes) {
  Host* host = find(task_id);
  if (!host || bytes.empty()) return;
  const size_t index = by_task_[task_id];
  (fd == 2 ? host->stderr_bytes : host->stdout_bytes) += bytes.size();
  if (!any_output_ && !chosen_) follow(index);
  any_output_ = true;
  Line& partial = host->partial[fd == 2 ? 1 : 0];
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, newline);
    const size_t room = limits_.max_line_bytes - partial.bytes.size();
    partial.bytes.append(piece.substr(0, room));
    if (piece.size() > room) partial.cut = true;
    if (newline == std::string_view::npos) break;
    if (!partial.cut && !partial.bytes.empty() && partial.bytes.back() == '\r') {
      partial.bytes.pop_back();  // a CRLF line
    }
    Line line = std::move(partial);
    partial = Line{"", line.fd, false};
    add_line(index, std::move(line));
    bytes.remove_prefix(newline + 1);
  }
}

void RunBoard::on_final(const std::string& task_id, std::optional<int64_t> exit_code,
                        std::optional<int64_t> signal) {
  Host* host = find(task_id);
  if (!host) return;
  host->exit_code = exit_code;
  host->signal = signal;
  end_partial_lines(by_task_[task_id]);
}

void RunBoard::on_gap(const std::string& task_id, uint64_t length) {
  if (!find(task_id)) return;
  add_line(by_task_[task_id], Line{"[tether] " + std::to_string(length) +
                                       " bytes of output were dropped by the agent here",
                                   0, false});
}

void RunBoard::on_run(const std::string& state, const std::string& note) {
  run_state_ = state;
  run_note_ = note;
}

void RunBoard::end_partial_lines(size_t index) {
  for (Line& partial : hosts_[index].partial) {
    if (partial.bytes.empty() && !partial.cut) continue;
    Line line = std::move(partial);
    partial = Line{"", line.fd, false};
    add_line(index, std::move(line));
  }
}

void RunBoard::add_line(size_t index, Line line) {
  Host& host = hosts_[index];
  host.line_bytes += line.bytes.size();
  host.lines.push_back(std::move(line));
  trim(index);
}

size_t RunBoard::budget(size_t index) const {
  const size_t share = std::max(limits_.min_host_bytes,
                                limits_.total_line_bytes / std::max<size_t>(1, hosts_.size()));
  return index == followed_ ? std::max(share, limits_.followed_host_bytes) : share;
}

void RunBoard::trim(size_t index) {
  Host& host = hosts_[index];
  const size_t bytes = budget(index);
  while (!host.lines.empty() &&
         (host.lines.size() > limits_.max_lines_per_host || host.line_bytes > bytes)) {
    host.line_bytes -= host.lines.front().bytes.size();
    host.lines.pop_front();
  }
}

void RunBoard::follow(size_t index) {
  const size_t previous = followed_;
  followed_ = index;
  if (previous != index && previous < hosts_.size()) trim(previous);  // back to its share
}

void RunBoard::follow_previous() {
  if (hosts_.empty()) return;
  chosen_ = true;
  follow((followed_ + hosts_.size() - 1) % hosts_.size());
}

void RunBoard::follow_next() {
  if (hosts_.empty()) return;
  chosen_ = true;
  follow((followed_ + 1) % hosts_.size());
}

void RunBoard::follow_next_with_output() {
  for (size_t step = 1; step < hosts_.size(); ++step) {
    const size_t index = (followed_ + step) % hosts_.size();
    if (hosts_[index].stdout_bytes + hosts_[index].stderr_bytes > 0) {
      chosen_ = true;
      follow(index);
      return;
    }
  }
}

void RunBoard::follow_previous_with_output() {
  for (size_t step = 1; step < hosts_.size(); ++step) {
    const size_t index = (followed_ + hosts_.size() - step) % hosts_.size();
    if (hosts_[index].stdout_bytes + hosts_[index].stderr_bytes > 0) {
      chosen_ = true;
      follow(index);
      return;
    }
  }
}

std::string RunBoard::followed_agent() const {
  return hosts_.empty() ? "" : hosts_[followed_].agent;
}

std::string RunBoard::header() const {
  std::map<std::string, size_t> counts = counts_;
  std::string text;
  auto add_count = [&text](const std::string& state, size_t count) {
    text += (text.empty() ? "" : ", ") + std::to_string(count) + " " + printable(state);
  };
  for (const auto& state : protocol::run_task_states()) {
    if (auto it = counts.find(state); it != counts.end()) {
      add_count(state, it->second);
      counts.erase(it);
    }
  }
  for (const auto& [state, count] : counts)
    add_count(state, count);  // a state this CLI does not know yet
  return "run " + printable(run_id_) + " " + printable(run_state_) + ": " +
         (text.empty() ? "no tasks" : text) +
         (run_note_.empty() ? "" : " (" + printable(run_note_) + ")");
}

std::string RunBoard::row(const Host& host, bool followed, size_t name_width) const {
  const std::string exit = host.exit_code ? std::to_string(*host.exit_code)
                           : host.signal  ? "signal " + std::to_string(*host.signal)
                                          : "-";
  return std::string(followed ? "> " : "  ") + fit_to_width(printable(host.agent), name_width) +
         "  " + fit_to_width(printable(host.state), kStateWidth) + " " +
         fit_to_width(human_bytes(host.stdout_bytes), kBytesWidth, true) + "  " +
         fit_to_width(human_bytes(host.stderr_bytes), kBytesWidth, true) + "  " + exit;
}

std::vector<std::string> RunBoard::rows_window(size_t room, size_t cols) const {
  const size_t name_width = name_width_;
  std::vector<std::string> lines;
  if (room == 0) return lines;
  lines.push_back(clip_to_width("  " + fit_to_width("AGENT", name_width) + "  " +
                                    fit_to_width("STATE", kStateWidth) + " " +
                                    fit_to_width("STDOUT", kBytesWidth, true) + "  " +
                                    fit_to_width("STDERR", kBytesWidth, true) + "  EXIT",
                                cols));
  const size_t total = hosts_.size();
  const size_t space = room - 1;
  // All rows, or a window around the followed host and a line for the rest.
  const size_t shown = total <= space ? total : std::max<size_t>(1, space - 1);
  size_t first = followed_ > shown / 2 ? followed_ - shown / 2 : 0;
  first = std::min(first, total - std::min(total, shown));
  for (size_t index = first; index < first + shown && index < total; ++index)
    lines.push_back(clip_to_width(row(hosts_[index], index == followed_, name_width), cols));
  if (shown < total && space >= 2) {
    const size_t below = total - first - shown;
    lines.push_back(clip_to_width("  +" + std::to_string(total - shown) + " more (" +
                                      std::to_string(first) + " above, " + std::to_string(below) +
                                      " below)",
                                  cols));
  }
  return lines;
}

std::vector<std::string> RunBoard::output_lines(size_t room, size_t cols) const {
  std::vector<std::string> lines;
  if (room == 0 || hosts_.empty()) return lines;
  const Host& host = hosts_[followed_];
  // Newest first: the unfinished lines, then the kept ones from the end.
  for (int stream = 1; stream >= 0 && lines.size() < room; --stream) {
    const Line& partial = host.partial[stream];
    if (!partial.bytes.empty() || partial.cut) {
      lines.push_back(clip_to_width(board_line_text(partial.bytes, partial.fd, partial.cut), cols));
    }
  }
  for (auto it = host.lines.rbegin(); it != host.lines.rend() && lines.size() < room; ++it)
    lines.push_back(clip_to_width(board_line_text(it->bytes, it->fd, it->cut), cols));
  std::reverse(lines.begin(), lines.end());
  return lines;
}

std::vector<std::string> RunBoard::render(size_t rows, size_t cols) const {
  std::vector<std::string> screen;
  if (rows == 0 || cols == 0) return screen;
  screen.push_back(clip_to_width(header(), cols));
  if (!notice_.empty()) screen.push_back(clip_to_width(printable(notice_), cols));
  // Left for the titles and rows, the separator and the output.
  const size_t available = rows > screen.size() + 1 ? rows - screen.size() - 1 : 0;
  const size_t wanted = hosts_.size() + 1;  // the titles and every row
  const size_t board_room =
      wanted + kMinOutputLines <= available ? wanted : std::max<size_t>(2, available / 2);
  for (auto& line : rows_window(std::min(board_room, available), cols))
    screen.push_back(std::move(line));
  if (screen.size() < rows) {
    const std::string name = hosts_.empty() ? "no agents" : printable(followed_agent());
    std::string separator = "-- " + clip_to_width(name, 32) + " -- " + kKeys + " ";
    const size_t width = display_width(separator);
    if (width < cols) separator.append(cols - width, '-');
    screen.push_back(clip_to_width(separator, cols));
  }
  for (auto& line : output_lines(rows - std::min(rows, screen.size()), cols))
    screen.push_back(std::move(line));
  screen.resize(std::min(screen.size(), rows));
  return screen;
}

}  // namespace tether::cli
