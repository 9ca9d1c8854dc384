#include "core/pipe_reader.hpp"

#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

namespace tether::core {

PipeReader::PipeReader(UvHandle<uv_pipe_t> pipe, size_t buffer_bytes)
    : pipe_(std::move(pipe)),
      buffer_(std::make_unique<char[]>(buffer_bytes)),
      buffer_bytes_(buffer_bytes) {
  pipe_.get()->data = this;
}

void PipeReader::ReadAwaiter::await_suspend(std::coroutine_handle<> awaiting) {
  PipeReader& reader = reader_;
  reader.waiter_ = awaiting;
  reader.last_read_ = 0;
  if (token_.cancelled()) {
    reader.close_and_resume();
    return;
  }
  if (int rc = uv_read_start(reader.pipe_.stream(), &PipeReader::on_alloc, &PipeReader::on_read);
      rc != 0) {
    reader.error_ =
        make_error(Errc::kIo, "read_failed", std::string("uv_read_start: ") + uv_strerror(rc));
    reader.close_and_resume();
    return;
  }
  registration_.emplace(token_, [&reader] {
    if (reader.closing_) return;
    uv_read_stop(reader.pipe_.stream());
    reader.close_and_resume();
  });
}

Result<ReadChunk> PipeReader::ReadAwaiter::await_resume() {
  registration_.reset();
  PipeReader& reader = reader_;
  if (const size_t bytes = std::exchange(reader.last_read_, 0); bytes > 0) {
    return ReadChunk{std::string_view(reader.buffer_.get(), bytes), false};
  }
  if (reader.error_) return *reader.error_;
  if (reader.end_of_stream_) return ReadChunk{{}, true};
  if (token_.cancelled()) return cancelled_error();
  return ReadChunk{{}, true};  // closed by an earlier cancellation: nothing more will come
}

std::string_view PipeReader::read_available() {
  if (closing_ || closed_ || waiter_) return {};
  uv_os_fd_t fd = -1;
  if (uv_fileno(pipe_.base(), &fd) != 0) return {};
  ssize_t got;
  do {
    got = ::read(fd, buffer_.get(), buffer_bytes_);  // the fd is non-blocking (uv_pipe_open)
  } while (got < 0 && errno == EINTR);
  if (got <= 0) return {};
  ++reads_;
  return std::string_view(buffer_.get(), static_cast<size_t>(got));
}

void PipeReader::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<PipeReader*>(handle->data);
  *buf = uv_buf_init(self->buffer_.get(), static_cast<unsigned int>(self->buffer_bytes_));
}

void PipeReader::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<PipeReader*>(stream->data);
  if (nread == 0) return;  // EAGAIN: libuv will call again
  uv_read_stop(stream);
  if (nread > 0) {
    self->last_read_ = static_cast<size_t>(nread);
    ++self->reads_;
    std::exchange(self->waiter_, {}).resume();
    return;
  }
  if (nread == UV_EOF) {
    self->end_of_stream_ = true;
  } else {
    self->error_ = make_error(Errc::kIo, "read_failed",
                              std::string("pipe read: ") + uv_strerror(static_cast<int>(nread)));
  }
  self->close_and_resume();
}

void PipeReader::close_and_resume() {
  closing_ = true;
  pipe_.close(&PipeReader::on_closed, this);
}

void PipeReader::on_closed(void* self) {
  auto* reader = static_cast<PipeReader*>(self);
  reader->closed_ = true;
  if (reader->waiter_) std::exchange(reader->waiter_, {}).resume();
}

}  // namespace tether::core
