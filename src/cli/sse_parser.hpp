// SseParser: incremental Server-Sent Events parsing (WHATWG rules).
//
// Fed arbitrary slices of the stream; calls back once per complete event
// (terminated by a blank line). Lines end with LF, CR or CRLF; several
// "data:" lines join with LF; comments (":...") and unknown fields are
// ignored. A line longer than max_line_bytes is an error, so a broken or
// hostile server cannot make the CLI buffer without bound.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace tether::cli {

struct SseEvent {
  std::string id;  // empty if the event had no id field
  std::string type = "message";
  std::string data;
};

class SseParser {
 public:
  using Handler = std::function<void(const SseEvent&)>;
  explicit SseParser(Handler handler, size_t max_line_bytes = 8 << 20)
      : handler_(std::move(handler)), max_line_bytes_(max_line_bytes) {}

  // Parses `bytes`; an error ends the stream for good.
  Result<void> feed(std::string_view bytes);
  // The id of the last dispatched event that had one (for Last-Event-ID).
  const std::string& last_event_id() const { return last_event_id_; }
  // Forgets a line and an event not complete yet (the connection that
  // carried them dropped; the stream resumes after last_event_id()). A
  // parser that failed stays failed.
  void discard_partial();

 private:
  void process_line(std::string_view line);
  void dispatch();

  Handler handler_;
  size_t max_line_bytes_;
  std::string line_;
  bool after_cr_ = false;
  bool failed_ = false;
  SseEvent pending_;
  bool has_data_ = false;
  bool has_id_ = false;
  std::string last_event_id_;
};

}  // namespace tether::cli
