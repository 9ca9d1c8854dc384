#include "cli/sse_parser.hpp"

namespace tether::cli {

Result<void> SseParser::feed(std::string_view bytes) {
  if (failed_) return make_error(Errc::kProtocol, "sse_invalid", "the event stream already failed");
  for (char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // CRLF: the CR ended the line already
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      process_line(line_);
      line_.clear();
      continue;
    }
    line_.push_back(c);
    if (line_.size() > max_line_bytes_) {
      failed_ = true;
      return make_error(
          Errc::kProtocol, "sse_invalid",
          "event stream line longer than " + std::to_string(max_line_bytes_) + " bytes");
    }
  }
  return {};
}

void SseParser::process_line(std::string_view line) {
  if (line.empty()) {
    dispatch();
    return;
  }
  if (line[0] == ':') return;  // comment
  std::string_view field = line;
  std::string_view value;
  if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) pending_.data.push_back('\n');
    pending_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    pending_.type = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      pending_.id = std::string(value);
      has_id_ = true;
    }
  }
  // "retry" and unknown fields: nothing for us to do.
}

void SseParser::discard_partial() {
  line_.clear();
  after_cr_ = false;
  pending_ = SseEvent();
  has_data_ = false;
  has_id_ = false;
}

void SseParser::dispatch() {
  if (has_id_) last_event_id_ = pending_.id;
  if (has_data_) handler_(pending_);
  pending_ = SseEvent();
  has_data_ = false;
  has_id_ = false;
}

}  // namespace tether::cli
