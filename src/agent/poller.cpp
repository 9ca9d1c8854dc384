#include "agent/poller.hpp"

#include <algorithm>
#include <random>

#include "core/backoff.hpp"
#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/wall_clock.hpp"
#include "protocol/api_error.hpp"

namespace tether::agent {

namespace {

constexpr uint64_t kFirstBackoffMs = 1000;
constexpr uint64_t kLongestBackoffMs = 60'000;
// A poll answered "no task" sooner than this after it began (a hub that
// does not hold polls open) is followed by the next one only this long
// after the first began; hub.wake still polls at once.
constexpr uint64_t kMinPollIntervalMs = 1000;

// Full jitter over [1 s, ceiling]: agents that failed together spread out,
// and none retries sooner than a second.

// The "message" of the hub's JSON error body, or the start of the body.
std::string hub_message(const std::string& body) {
  auto error = protocol::parse_api_error(body);
  return error && !error->message.empty() ? error->message : body.substr(0, 200);
}

}  // namespace

Poller::Poller(core::Loop& loop, core::ThreadPool& pool, PollerOptions options,
               std::function<bool()> has_slot, std::function<void(protocol::TaskSpec)> start,
               std::function<void(const protocol::AttemptRef&, const std::string&)> refuse)
    : loop_(loop),
      pool_(pool),
      options_(std::move(options)),
      has_slot_(std::move(has_slot)),
      start_(std::move(start)),
      refuse_(std::move(refuse)),
      wake_(loop) {}

void Poller::take_task(const std::string& body) {
  auto task = protocol::decode_task(body);
  if (task) {
    core::log_info("poller", "received " + task->attempt_id);
    start_(std::move(*task));
  } else if (auto ids = protocol::peek_task_ids(body)) {
    // The hub now holds the attempt as ours: refuse it with a final
    // (docs/protocol.md 3) instead of leaving it to the lease.
    core::log_error("poller", "the hub sent " + ids->attempt_id + ", which cannot be run: " +
                                  task.error().message + "; rejecting it");
    if (refuse_) refuse_(*ids, task.error().message);
  } else {
    core::log_error("poller", "the hub sent a task without usable ids: " + task.error().message);
  }
}

uint64_t Poller::note_failure(const Result<core::HttpReply>& reply, uint64_t pause_ms) {
  ++failures_;
  last_error_ = core::utc_now() + ": " +
                (reply ? "the hub answered " + std::to_string(reply->status) + " (" +
                             hub_message(reply->body) + ")"
                       : reply.error().message);
  loop_.update_time();
  const int64_t now = static_cast<int64_t>(loop_.now_ms());
  if (!reply) {
    core::log_warning("poller", "cannot reach the hub: " + reply.error().message);
  } else if (reply->status == 401 || reply->status == 403) {
    if (now - last_auth_log_ms_ >= 60'000) {
      last_auth_log_ms_ = now;
      core::log_error(
          "poller", "the hub refused this agent's token (" + std::to_string(reply->status) + ": " +
                        hub_message(reply->body) + "); check token_file: the token is " +
                        options_.token_source + ", the agent name '" + options_.agent + "'");
    }
  } else {
    if (const std::string retry_after = reply->header("retry-after"); !retry_after.empty()) {
      try {
        pause_ms = std::max<uint64_t>(pause_ms, std::stoull(retry_after) * 1000);
      } catch (const std::exception&) {
        // Not seconds: keep our backoff.
      }
    }
    core::log_warning("poller", "the hub answered " + std::to_string(reply->status) + "; waiting " +
                                    std::to_string(pause_ms) + " ms");
  }
  return pause_ms;
}

core::Co<void> Poller::run(core::CancellationToken stop) {
  core::Backoff backoff(kFirstBackoffMs, kLongestBackoffMs);
  while (!stop.cancelled()) {
    if (!has_slot_()) {
      co_await wake_.wait(0, stop);
      continue;
    }
    core::HttpCall call = options_.hub.http_call(
        "GET", "/api/v1/agents/" + core::url_encode(options_.agent) +
                   "/tasks/next?wait=" + std::to_string(options_.wait_s) +
                   (options_.instance.empty() ? "" : "&instance=" + options_.instance));
    call.read_timeout_s = static_cast<int>(options_.wait_s) + 15;
    loop_.update_time();
    const uint64_t began_ms = loop_.now_ms();
    auto reply = co_await core::http_request(loop_, pool_, std::move(call), stop);
    if (stop.cancelled()) break;

    uint64_t pause_ms = 0;
    if (reply && reply->status == 200) {
      last_success_ = core::utc_now();
      last_error_.clear();  // status shows a failure only while it is the latest news
      ++tasks_received_;
      backoff.reset();
      take_task(reply->body);
      continue;
    }
    if (reply && reply->status == 204) {
      last_success_ = core::utc_now();
      last_error_.clear();
      backoff.reset();
      loop_.update_time();
      const uint64_t took = loop_.now_ms() - began_ms;
      if (took < kMinPollIntervalMs) {
        (void)co_await wake_.wait(kMinPollIntervalMs - took, stop);
      }
      continue;
    }
    pause_ms = note_failure(reply, backoff.next_delay_ms());
    co_await wake_.wait(std::max<uint64_t>(pause_ms, 1), stop);
  }
}

}  // namespace tether::agent
