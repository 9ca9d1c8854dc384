// HostLineAssembler: the output of many hosts on one stdout and one stderr,
// pdsh style: every line is written whole, prefixed with its host's name
// and ": " ("edge-1: hello\n"), so two hosts' bytes never share a line.
//
// Bytes arrive in chunks cut anywhere; each (task, stream) keeps what
// follows its last newline until the newline comes. The bytes themselves
// are unchanged: stripping the prefixes from one host's lines gives back
// exactly what it wrote, provided it ended with a newline. When a task ends
// (finish) its partial last line is written with a newline added. A line
// longer than `max_line_bytes` is written in pieces of that size, each with
// a newline added, so a host that never writes a newline cannot make the
// CLI hold its whole output; and when all hosts together hold more than
// `max_pending_bytes`, the line just added to is written the same way, so
// ten thousand hosts cannot either.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace tether::cli {

class HostLineAssembler {
 public:
  // Receives complete prefixed lines for descriptor `fd` (1 or 2), one or
  // more at a time, each ending in '\n'.
  using Sink = std::function<void(int fd, std::string_view lines)>;

  explicit HostLineAssembler(Sink sink, size_t max_line_bytes = 1 << 20,
                             size_t max_pending_bytes = 64 << 20)
      : sink_(std::move(sink)),
        max_line_bytes_(max_line_bytes == 0 ? 1 : max_line_bytes),
        max_pending_bytes_(max_pending_bytes) {}

  // `bytes` of the stream `fd` (1 stdout, 2 stderr) of `task`, whose lines
  // are prefixed with `host`. The host given first for a (task, stream) is
  // kept until finish.
  void add(const std::string& task, const std::string& host, int fd, std::string_view bytes);
  // The task ended: what is left of its lines, on both streams, is written
  // with a newline added, and it is forgotten.
  void finish(const std::string& task);
  // finish() for every task that has bytes left (the end of the run).
  void finish_all();
  // Bytes held back, waiting for a newline, over all tasks.
  size_t pending_bytes() const { return pending_bytes_; }

 private:
  struct Partial {
    std::string host;
    std::string bytes;  // after the last newline written
  };
  static void emit(const std::string& host, std::string_view line, bool add_newline,
                   std::string& out);

  Sink sink_;
  size_t max_line_bytes_;
  size_t max_pending_bytes_;
  std::map<std::pair<std::string, int>, Partial> partial_;
  size_t pending_bytes_ = 0;
};

}  // namespace tether::cli
