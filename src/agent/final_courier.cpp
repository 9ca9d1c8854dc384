#include "agent/final_courier.hpp"

#include <algorithm>
#include <random>

#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/api_error.hpp"
#include "protocol/error_codes.hpp"

namespace tether::agent {

namespace {

// The code of the hub's JSON error body, or empty.
std::string error_code_of(const std::string& body) {
  auto error = protocol::parse_api_error(body);
  return error ? error->code : std::string();
}

}  // namespace

core::Co<void> FinalCourier::run(core::CancellationToken stop) {
  while (!stop.cancelled()) {
    loop_.update_time();
    const uint64_t now = loop_.now_ms();
    uint64_t next_due = 0;  // 0: nothing scheduled
    bool delivered = false;
    auto finals = outbox_.frames().finals();
    // Forget finals that have left the outbox.
    for (auto it = states_.begin(); it != states_.end();) {
      const bool present = std::any_of(finals.begin(), finals.end(), [&](const StoredFrame& frame) {
        return frame.message_id == it->first;
      });
      it = present ? std::next(it) : states_.erase(it);
    }
    for (const auto& final_frame : finals) {
      // Over HTTP only to a hub that listed final.http (docs/protocol.md 9);
      // otherwise finals wait for the channel.
      if (!channel_.agreed().final_http) break;
      auto& state = states_[final_frame.message_id];
      // Over HTTP when the channel is down, or has sat on it for too long.
      uint64_t eligible_at = now;
      if (channel_.live()) {
        auto sent = channel_.final_sent_at(final_frame.message_id);
        eligible_at =
            sent ? *sent + options_.channel_patience_ms : now + options_.channel_patience_ms;
      }
      const uint64_t due = std::max(eligible_at, state.next_try_ms);
      if (due <= now) {
        co_await deliver(final_frame, state, stop);
        if (stop.cancelled()) co_return;
        delivered = true;
      } else if (next_due == 0 || due < next_due) {
        next_due = due;
      }
    }
    // A try just made may have scheduled the next one: look again first.
    if (delivered) continue;
    // Wait for the next due final, or for the outbox to change (a new final,
    // an ack); with nothing due, only for a change: an idle agent stays idle.
    loop_.update_time();
    const uint64_t wait_ms =
        next_due == 0 ? 0 : std::max<uint64_t>(next_due - std::min(next_due, loop_.now_ms()), 1);
    co_await outbox_.changed().wait(wait_ms, stop);
  }
}

core::Co<void> FinalCourier::deliver(const StoredFrame& final_frame, Attempts& state,
                                     core::CancellationToken stop) {
  core::HttpCall call = options_.hub.http_call(
      "PUT", "/api/v1/attempts/" + core::url_encode(final_frame.attempt_id) + "/final");
  call.body = final_frame.payload;
  call.read_timeout_s = 10;
  call.connect_timeout_s = 10;
  auto reply = co_await core::http_request(loop_, pool_, std::move(call), stop);
  if (stop.cancelled()) co_return;
  loop_.update_time();
  auto retry_later = [&](uint64_t delay_ms) { state.next_try_ms = loop_.now_ms() + delay_ms; };
  if (!reply) {
    core::log_warning("courier", "final of " + final_frame.attempt_id +
                                     " not delivered: " + reply.error().message + "; retrying");
    retry_later(state.backoff.next_delay_ms());
    co_return;
  }
  const int status = reply->status;
  if (status == 200) {
    ++deliveries_;
    outbox_.ack_message(final_frame.message_id);
    // Said once the outbox no longer holds it: an operator (or a test) who
    // reads this line and then the outbox finds the final gone.
    const std::string attempt_id = final_frame.attempt_id;
    outbox_.when_committed([attempt_id] {
      core::log_info("courier", "final of " + attempt_id + " delivered over HTTP");
    });
    co_return;
  }
  // Definitive answers only (docs/protocol.md 7): the attempt was lost or
  // superseded (410), another final stands (422), or the hub does not know
  // the attempt (404 with unknown_attempt, as a hello_ack's discard would
  // say). A 404 without that code (a proxy's page, a wrong path) is not the
  // hub speaking: keep the final and retry.
  const auto code = protocol::parse_error_code(error_code_of(reply->body));
  if (status == 410 || status == 422 ||
      (status == 404 && code == protocol::ErrorCode::kUnknownAttempt)) {
    core::log_error("courier", "the hub will not take the final of " + final_frame.attempt_id +
                                   " (" + std::to_string(status) +
                                   "): " + reply->body.substr(0, 300) + "; dropping it");
    outbox_.ack_message(final_frame.message_id);
    co_return;
  }
  if (status == 409) {
    core::log_info("courier", "the hub wants more output before the final of " +
                                  final_frame.attempt_id + "; the channel replays it");
    retry_later(state.backoff.next_delay_ms());
    co_return;
  }
  uint64_t delay = state.backoff.next_delay_ms();
  if (const std::string retry_after = reply->header("retry-after"); !retry_after.empty()) {
    try {
      delay = std::max<uint64_t>(delay, std::stoull(retry_after) * 1000);
    } catch (const std::exception&) {
      // Not a number of seconds: keep our own backoff.
    }
  }
  core::log_warning("courier", "final of " + final_frame.attempt_id + ": hub answered " +
                                   std::to_string(status) + "; retrying");
  retry_later(delay);
}

}  // namespace tether::agent
