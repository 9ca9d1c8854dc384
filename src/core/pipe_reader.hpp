// PipeReader: the read end of a pipe, awaited one chunk at a time.
//
// Each read() starts libuv reading, takes exactly one callback's worth of
// bytes, and stops again, so a consumer that is not asking for bytes applies
// backpressure all the way to the writer (the pipe fills and it blocks).
// End of stream, a read error or cancellation closes the pipe handle, and the
// awaiter resumes only after the close has completed.
#pragma once

#include <uv.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "core/cancellation.hpp"
#include "core/result.hpp"
#include "core/uv_handle.hpp"

namespace tether::core {

struct ReadChunk {
  // Valid until the next read() on the same reader.
  std::string_view bytes;
  bool end_of_stream = false;
};

class PipeReader {
 public:
  // Takes an initialised pipe handle whose fd is the read end.
  PipeReader(UvHandle<uv_pipe_t> pipe, size_t buffer_bytes);
  PipeReader(const PipeReader&) = delete;
  PipeReader& operator=(const PipeReader&) = delete;

  class ReadAwaiter {
   public:
    ReadAwaiter(PipeReader& reader, CancellationToken token)
        : reader_(reader), token_(std::move(token)) {}
    ReadAwaiter(const ReadAwaiter&) = delete;
    ReadAwaiter& operator=(const ReadAwaiter&) = delete;
    bool await_ready() const noexcept { return reader_.closed_; }
    void await_suspend(std::coroutine_handle<> awaiting);
    Result<ReadChunk> await_resume();

   private:
    PipeReader& reader_;
    CancellationToken token_;
    std::optional<CancellationRegistration> registration_;
  };

  // One chunk of bytes, or end_of_stream once the writer side is gone. After
  // end of stream, an error or a cancellation the reader is closed for good.
  ReadAwaiter read(CancellationToken token = CancellationToken()) {
    return ReadAwaiter(*this, std::move(token));
  }

  bool closed() const { return closed_; }
  // Reads that brought bytes so far, by read() and read_available().
  uint64_t reads() const { return reads_; }

  // What the pipe holds right now, read without waiting (one read(2) of up
  // to the buffer size), for a consumer that polls on its own timer instead
  // of waking for each write. Empty when the pipe is empty, at end of stream
  // or on an error: read() then reports those, as they stick. Only between
  // reads (never while a read() is pending). Valid until the next read.
  std::string_view read_available();

 private:
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_closed(void* self);
  void close_and_resume();

  UvHandle<uv_pipe_t> pipe_;
  std::unique_ptr<char[]> buffer_;
  size_t buffer_bytes_;
  std::coroutine_handle<> waiter_;
  size_t last_read_ = 0;
  uint64_t reads_ = 0;
  bool end_of_stream_ = false;
  bool closing_ = false;
  bool closed_ = false;
  std::optional<Error> error_;
};

}  // namespace tether::core
