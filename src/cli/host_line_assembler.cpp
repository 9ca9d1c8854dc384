#include "cli/host_line_assembler.hpp"

namespace tether::cli {

void HostLineAssembler::emit(const std::string& host, std::string_view line, bool add_newline,
                             std::string& out) {
  out.append(host);
  out.append(": ");
  out.append(line);
  if (add_newline) out.push_back('\n');
}

void HostLineAssembler::add(const std::string& task, const std::string& host, int fd,
                            std::string_view bytes) {
  if (bytes.empty()) return;
  auto [it, fresh] = partial_.try_emplace({task, fd});
  Partial& partial = it->second;
  if (fresh) partial.host = host;
  std::string out;  // every whole line of this chunk, written at once
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const size_t room = max_line_bytes_ - partial.bytes.size();
    if (newline == std::string_view::npos && bytes.size() <= room) {
      partial.bytes.append(bytes);
      pending_bytes_ += bytes.size();
      break;
    }
    if (newline != std::string_view::npos && newline <= room) {
      // A line ends here: what was held back, then this chunk up to the newline.
      pending_bytes_ -= partial.bytes.size();
      partial.bytes.append(bytes.substr(0, newline + 1));
      emit(partial.host, partial.bytes, false, out);
      partial.bytes.clear();
      bytes.remove_prefix(newline + 1);
      continue;
    }
    // A line longer than the bound: its first max_line_bytes_ bytes go out
    // as a line of their own.
    pending_bytes_ -= partial.bytes.size();
    partial.bytes.append(bytes.substr(0, room));
    emit(partial.host, partial.bytes, true, out);
    partial.bytes.clear();
    bytes.remove_prefix(room);
  }
  if (pending_bytes_ > max_pending_bytes_ && !partial.bytes.empty()) {
    pending_bytes_ -= partial.bytes.size();
    emit(partial.host, partial.bytes, true, out);
    partial.bytes.clear();
  }
  if (!out.empty()) sink_(fd, out);
}

void HostLineAssembler::finish(const std::string& task) {
  for (int fd : {1, 2}) {
    auto it = partial_.find({task, fd});
    if (it == partial_.end()) continue;
    Partial partial = std::move(it->second);
    partial_.erase(it);
    if (partial.bytes.empty()) continue;
    pending_bytes_ -= partial.bytes.size();
    std::string out;
    emit(partial.host, partial.bytes, true, out);
    sink_(fd, out);
  }
}

void HostLineAssembler::finish_all() {
  while (!partial_.empty()) {
    // A copy: finish() erases the entry whose key this is.
    const std::string task = partial_.begin()->first.first;
    finish(task);
  }
}

}  // namespace tether::cli
