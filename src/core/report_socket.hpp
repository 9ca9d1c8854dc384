// ReportSocket: a unix stream socket that answers every connection with one
// report (text made fresh by a callback) and closes it. `tether-agent
// status` reads the running agent through one: no port, no protocol, and
// file permissions decide who may look.
//
// Opening refuses a path where another process still answers (a second
// agent on the same state directory); a socket file nobody answers is left
// over from a crash and is replaced.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "core/loop.hpp"
#include "core/result.hpp"
#include "core/uv_handle.hpp"

namespace tether::core {

class ReportSocket {
 public:
  // `mode`: the socket file's permission bits (connecting needs write).
  static Result<std::unique_ptr<ReportSocket>> open(Loop& loop, const std::string& path,
                                                    unsigned mode,
                                                    std::function<std::string()> report);
  ReportSocket(const ReportSocket&) = delete;
  ReportSocket& operator=(const ReportSocket&) = delete;
  // Stops listening and removes the socket file. Reports already being
  // written finish on their own (they are small: one write each).
  ~ReportSocket();

  const std::string& path() const { return path_; }

 private:
  ReportSocket(Loop& loop, std::string path, std::function<std::string()> report);
  static void on_connection(uv_stream_t* server, int status);

  Loop& loop_;
  std::string path_;
  std::function<std::string()> report_;
  UvHandle<uv_pipe_t> server_;
};

// The client side: connects to `path`, reads until the server closes.
// Blocking, with a timeout; for command-line tools, not for the loop.
Result<std::string> read_report_socket(const std::string& path, int timeout_ms);

}  // namespace tether::core
