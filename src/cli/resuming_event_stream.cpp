#include "cli/resuming_event_stream.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace tether::cli {

namespace {

// Waits `delay_ms`, in slices, so an interrupt is not kept waiting.
void pause(int delay_ms, const std::atomic<bool>& interrupted) {
  for (int waited = 0; waited < delay_ms && !interrupted.load(); waited += 50)
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50, delay_ms - waited)));
}

}  // namespace

ResumingEventStream::ResumingEventStream(HubClient& client, std::string target, bool follow,
                                         EventHandler on_event)
    : client_(client),
      target_(std::move(target)),
      follow_(follow),
      on_event_(std::move(on_event)),
      parser_([this](const SseEvent& event) {
        if (failure_) return;
        received_ = true;
        if (auto handled = on_event_(event); !handled) failure_ = handled.error();
      }) {}

Result<void> ResumingEventStream::run(const std::atomic<bool>& interrupted,
                                      core::HttpCallControl& control,
                                      const std::function<bool()>& done) {
  int delay_ms = 250;
  while (!done() && !interrupted.load()) {
    // A piece of an event the last connection cut off is not an event.
    parser_.discard_partial();
    received_ = false;
    auto reply =
        client_.stream(target_, parser_.last_event_id(), control, [&](std::string_view bytes) {
          if (auto fed = parser_.feed(bytes); !fed && !failure_) {
            failure_ = fed.error();
          }
          return !failure_ && !done();
        });
    if (failure_) return *failure_;
    if (done() || interrupted.load()) break;
    if (!reply) {
      if (reply.error().kind != Errc::kUnreachable && reply.error().kind != Errc::kIo) {
        return reply.error();
      }
    } else if (!follow_) {
      break;  // a bounded replay that ended: nothing more
    }
    // The stream dropped: resume after the last event passed on.
    if (received_) delay_ms = 250;
    pause(delay_ms, interrupted);
    delay_ms = std::min(delay_ms * 2, 5000);
  }
  return {};
}

}  // namespace tether::cli
