#include "cli/output_tail.hpp"

#include "core/url.hpp"

namespace tether::cli {

std::vector<std::string> last_lines(std::string_view bytes, size_t count, bool from_start) {
  if (!bytes.empty() && bytes.back() == '\n') bytes.remove_suffix(1);
  std::vector<std::string> lines;  // newest first while collecting
  while (lines.size() < count && !bytes.empty()) {
    const size_t newline = bytes.rfind('\n');
    if (newline == std::string_view::npos) {
      if (from_start) lines.emplace_back(bytes);  // else: a line cut off by the window
      break;
    }
    lines.emplace_back(bytes.substr(newline + 1));
    bytes = bytes.substr(0, newline);
  }
  return std::vector<std::string>(lines.rbegin(), lines.rend());
}

Result<std::vector<std::string>> fetch_last_lines(HubClient& client, const std::string& task_id,
                                                  const std::string& stream, uint64_t size,
                                                  size_t count) {
  if (size == 0 || count == 0) return std::vector<std::string>();
  const uint64_t offset = size > kTailWindowBytes ? size - kTailWindowBytes : 0;
  TETHER_TRY(reply, client.get("/api/v1/tasks/" + core::url_encode(task_id) +
                               "/output?stream=" + stream + "&offset=" + std::to_string(offset)));
  return last_lines(reply->body, count, offset == 0);
}

}  // namespace tether::cli
