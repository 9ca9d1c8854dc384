#include "agent/result_channel.hpp"

#include "agent/agent_hello.hpp"

#include <algorithm>
#include <random>

#include "core/backoff.hpp"
#include "core/co_group.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "core/wall_clock.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/utf8.hpp"

namespace tether::agent {

namespace {

using protocol::ErrorCode;
using protocol::StreamName;

constexpr uint64_t kHelloAckTimeoutMs = 30'000;
constexpr uint64_t kStableSessionMs = 10'000;
constexpr uint64_t kLongestReconnectMs = 30'000;

std::string join_words(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& word : words)
    text += (text.empty() ? "" : ", ") + word;
  return text;
}

}  // namespace

ResultChannel::ResultChannel(core::Loop& loop, Outbox& outbox, ChannelOptions options,
                             ChannelHandlers handlers)
    : loop_(loop),
      outbox_(outbox),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      sender_(loop, outbox, options_.send_window_bytes),
      ack_watchdog_(loop) {}

ResultChannel::~ResultChannel() = default;

void ResultChannel::close() {
  if (socket_) socket_->close(core::kCloseGoingAway, "agent shutting down");
}

core::Co<void> ResultChannel::run(core::CancellationToken stop) {
  core::WebSocketClientOptions client_options;
  client_options.ca_file = options_.hub.ca_file;
  // Each agent pings at its own period, up to a fifth under keepalive_s: a
  // fleet that reconnected in the same second drifts apart instead of
  // pinging the hub together every interval.
  std::uniform_int_distribution<uint64_t> shorter_by(0, options_.keepalive_s / 5);
  std::random_device entropy;
  client_options.ping_after_idle_s =
      static_cast<uint16_t>(options_.keepalive_s - shorter_by(entropy));
  client_options.dead_after_s = static_cast<uint16_t>(3 * options_.keepalive_s);
  client_options.handshake_timeout_s =
      static_cast<uint16_t>(std::clamp<uint64_t>(3 * options_.keepalive_s, 5, 60));
  auto client = core::WebSocketClient::create(loop_, client_options);
  if (!client) {
    core::log_error("channel", client.error().message);
    co_return;
  }
  client_ = std::move(*client);
  core::WebSocketConnectOptions connect =
      options_.hub.websocket("/api/v1/agents/" + options_.agent + "/channel");
  connect.max_message_bytes = protocol::kMaxFrameBytes;

  core::Backoff backoff(500, kLongestReconnectMs);
  counters_.since = core::utc_now();
  // Until the first channel is open or has failed, the hub is presumed to be
  // taking frames: a task that arrives by poll while the channel is still
  // being opened (at start, the two race) pauses at half the outbox cap
  // instead of dropping its output (OutboxBudget::has_flow_room).
  outbox_.budget().set_channel_live(true);
  while (!stop.cancelled()) {
    auto connected = co_await client_->connect(connect, stop);
    if (!connected) outbox_.budget().set_channel_live(false);
    if (connected) {
      const uint64_t before = sessions_;
      loop_.update_time();
      const uint64_t began_ms = loop_.now_ms();
      co_await session(*connected, stop);
      loop_.update_time();
      // A session that lasted is a success: retry soon. One the hub ended at
      // once (a flapping proxy, an overloaded hub) keeps the backoff growing,
      // or the agent would reconnect in a tight loop.
      if (sessions_ > before && loop_.now_ms() - began_ms >= kStableSessionMs) backoff.reset();
    } else if (!connected.is_cancelled()) {
      const auto& error = connected.error();
      counters_.connect_failures += 1;
      counters_.last_error = error.message;
      const bool auth = error.http_status == 401 || error.http_status == 403;
      loop_.update_time();
      const int64_t now = static_cast<int64_t>(loop_.now_ms());
      if (!auth) {
        core::log_warning("channel", "cannot open the result channel to " +
                                         options_.hub.url.origin() + ": " + error.message);
      } else if (now - last_auth_log_ms_ >= 60'000) {
        // Logged at most once a minute: a wrong token must not flood the journal.
        last_auth_log_ms_ = now;
        core::log_error("channel",
                        "the hub refused this agent's token (" + std::to_string(error.http_status) +
                            "); check token_file: the token is " + options_.token_source +
                            ", the agent name '" + options_.agent + "'");
      }
    }
    if (stop.cancelled()) break;
    (void)co_await core::sleep_for(loop_, backoff.next_delay_ms(), stop);
  }
  client_.reset();
}

core::Co<bool> ResultChannel::handshake(std::shared_ptr<core::WebSocketConnection> socket,
                                        core::CancellationToken stop) {
  protocol::Frame hello;
  hello.message_id = "hello:" + options_.agent + ":" + std::to_string(next_message_++);
  hello.agent_id = options_.agent;
  hello.sent_at = core::utc_now();
  auto held = describe_outbox(outbox_, TETHER_VERSION);
  if (!held) {
    // The outbox is locked by another process: a hello now could not say
    // what the agent holds. Try again after the backoff.
    socket->close(core::kCloseNormal, "outbox busy; reconnecting");
    co_return false;
  }
  held->instance = options_.instance;
  held->labels = options_.labels;
  hello.payload = std::move(*held);
  socket->send_text(fitted_hello(std::move(hello)));

  // Nothing is sent before the hub says what it already has.
  core::CancellationSource ack_timeout;
  core::CancellationRegistration outer(stop, [&ack_timeout] { ack_timeout.cancel(); });
  core::Timer deadline(loop_);
  deadline.start(kHelloAckTimeoutMs, [&ack_timeout] { ack_timeout.cancel(); });
  bool acknowledged = false;
  while (!acknowledged) {
    auto text = co_await socket->receive(ack_timeout.token());
    if (!text) break;
    auto frame = protocol::decode_frame(*text);
    if (!frame) {
      if (!on_unreadable(*text, frame.error())) break;
      continue;
    }
    if (auto* ack = std::get_if<protocol::HubHelloAck>(&frame->payload)) {
      apply_hello_ack(*ack);
      acknowledged = true;
    } else {
      handle(std::move(*frame));
    }
  }
  deadline.stop();
  if (!acknowledged && stop.cancelled()) {
    // Shutting down before the hub answered: not the hub's fault.
    if (socket->is_open()) socket->close(core::kCloseGoingAway, "agent shutting down");
    co_return false;
  }
  if (!acknowledged) {
    if (socket->is_open()) {
      core::log_warning("channel", "no hub.hello_ack within " +
                                       std::to_string(kHelloAckTimeoutMs / 1000) +
                                       " s; closing (1002) and reconnecting");
      socket->close(core::kCloseProtocolError, "no hello_ack");
    }
    co_return false;
  }
  co_return true;
}

void ResultChannel::begin_session() {
  ++sessions_;
  live_ = true;
  outbox_.budget().set_channel_live(true);
  counters_.since = core::utc_now();
  core::log_info("channel", "connected to " + options_.hub.url.origin() + "; replaying " +
                                std::to_string(outbox_.frames().rows()) + " outbox frames");
  loop_.update_time();
  last_ack_ms_ = loop_.now_ms();
  ack_watchdog_.start(1000, [this] { check_acks(); });
}

void ResultChannel::check_acks() {
  // A hub that answers pings but never acks must not hold output forever
  // (docs/agent.md, outbox_full_policy): without an ack for this long while
  // frames wait for one, the session ends and the agent reconnects.
  loop_.update_time();
  const uint64_t silent = loop_.now_ms() - std::max(last_ack_ms_, sender_.waiting_since_ms());
  if (sender_.in_flight_bytes() > 0 && silent >= ack_timeout_ms() && socket_ &&
      socket_->is_open()) {
    core::log_warning("channel", "no ack from the hub for " + std::to_string(silent / 1000) +
                                     " s while " + std::to_string(sender_.in_flight_bytes()) +
                                     " bytes wait for one; reconnecting");
    socket_->close(1011, "no acks");
    return;
  }
  ack_watchdog_.start(1000, [this] { check_acks(); });
}

core::Co<void> ResultChannel::receive_frames(std::shared_ptr<core::WebSocketConnection> socket,
                                             core::CancellationToken stop) {
  for (;;) {
    auto text = co_await socket->receive(stop);
    if (text.is_cancelled()) {
      // Shutting down: let the close handshake finish, briefly.
      socket->close(core::kCloseGoingAway, "agent shutting down");
      core::CancellationSource grace;
      core::Timer grace_timer(loop_);
      grace_timer.start(2000, [&grace] { grace.cancel(); });
      for (;;) {
        auto rest = co_await socket->receive(grace.token());
        if (!rest) break;
      }
      grace_timer.stop();
      co_return;
    }
    if (!text) co_return;
    auto frames = protocol::decode_frames(*text);  // one, or a batch's (section 4.4)
    if (!frames) {
      (void)on_unreadable(*text, frames.error());  // a version mismatch closes the socket
      continue;
    }
    for (auto& frame : *frames)
      handle(std::move(frame));
  }
}

std::string ResultChannel::end_session(const core::WebSocketConnection& socket) {
  ack_watchdog_.stop();
  live_ = false;
  outbox_.budget().set_channel_live(false);
  counters_.since = core::utc_now();
  const std::string how = std::to_string(socket.close_code()) +
                          (socket.close_reason().empty() ? "" : ": " + socket.close_reason());
  counters_.last_error = "session closed (" + how + ")";
  return how;
}

core::Co<void> ResultChannel::session(std::shared_ptr<core::WebSocketConnection> socket,
                                      core::CancellationToken stop) {
  socket_ = socket;
  socket->set_on_drained([this] { sender_.wake(); });
  const bool acknowledged = co_await handshake(socket, stop);
  if (!acknowledged) {
    outbox_.budget().set_channel_live(false);
    socket_.reset();
    co_return;
  }
  begin_session();
  sender_.begin(socket);
  core::CancellationSource session_over;
  core::CoGroup group;
  group.spawn(sender_.run(session_over.token()));
  group.spawn(forward_outbox_changes(session_over.token()));
  co_await receive_frames(socket, stop);
  const std::string how = end_session(*socket);
  session_over.cancel();
  co_await group.join();
  sender_.end();
  core::log_info("channel", "result channel closed (" + how + ")");
  socket_.reset();
}

core::Co<void> ResultChannel::forward_outbox_changes(core::CancellationToken stop) {
  while (!stop.cancelled()) {
    co_await outbox_.changed().wait(0, stop);
    sender_.wake();
  }
}

void ResultChannel::apply_hello_ack(const protocol::HubHelloAck& ack) {
  // Only what both sides listed is used (docs/protocol.md 9).
  agreed_ = protocol::Capabilities::from(ack.capabilities);
  sender_.set_agreed(agreed_);
  outbox_.budget().set_gaps_allowed(agreed_.output_gap);
  if (!agreed_.output_base64 || !agreed_.output_gap || !agreed_.final_http) {
    core::log_info("channel", "the hub offers only: " + (ack.capabilities.empty()
                                                             ? std::string("none")
                                                             : join_words(ack.capabilities)));
  }
  for (const auto& point : ack.resume) {
    // The hub wants seqs already acked and deleted here (it lost them): the
    // stream cannot be completed (docs/protocol.md 4.2).
    const auto first = outbox_.frames().first_held_seq(point.attempt_id, point.stream);
    if (first && point.next_seq < *first) {
      sender_.abandon(point.attempt_id, point.stream, point.next_seq, std::nullopt,
                      "the hub no longer had what it had acknowledged");
      continue;
    }
    outbox_.resume_from(point.attempt_id, point.stream, point.next_seq);
  }
  for (const auto& attempt_id : ack.finals_held)
    outbox_.ack_message(protocol::final_message_id(attempt_id));
  for (const auto& notice : ack.discard) {
    core::log_warning("channel",
                      "the hub discarded attempt " + notice.attempt_id + ": " + notice.reason);
    sender_.discard_attempt(notice.attempt_id);  // and whatever of it is in flight
    if (handlers_.discarded) handlers_.discarded(notice.attempt_id);
  }
}

void ResultChannel::handle(protocol::Frame&& frame) {
  if (auto* ack = std::get_if<protocol::Ack>(&frame.payload)) {
    counters_.acks_received += 1;
    on_ack(*ack);
  } else if (auto* error = std::get_if<protocol::ErrorFrame>(&frame.payload)) {
    on_error(*error);
  } else if (auto* cancel = std::get_if<protocol::TaskCancel>(&frame.payload)) {
    core::log_info("channel",
                   "the hub cancels " + cancel->attempt.attempt_id + ": " + cancel->reason);
    if (handlers_.cancel) handlers_.cancel(cancel->attempt.attempt_id, cancel->reason);
  } else if (std::holds_alternative<protocol::HubWake>(frame.payload)) {
    if (handlers_.wake) handlers_.wake();
  } else if (auto* hello_ack = std::get_if<protocol::HubHelloAck>(&frame.payload)) {
    apply_hello_ack(*hello_ack);
  } else {
    core::log_warning("channel", "unexpected " + std::string(frame.type()) + " from the hub");
  }
}

void ResultChannel::on_ack(const protocol::Ack& ack) {
  loop_.update_time();
  last_ack_ms_ = loop_.now_ms();
  if (ack.acked == protocol::AckedKind::kOutput) {
    sender_.output_acked(ack.attempt_id, ack.stream, ack.through_seq);
    return;
  }
  sender_.message_acked(ack.related_message_id);
  if (ack.acked == protocol::AckedKind::kFinal) sender_.attempt_done(ack.attempt_id);
  if (ack.acked == protocol::AckedKind::kFinal && ack.verified == false) {
    core::log_warning("channel", "the hub accepted the final of " + ack.attempt_id +
                                     " but could not verify its output (see the task on the hub)");
  }
}

void ResultChannel::on_error(const protocol::ErrorFrame& error) {
  core::log_warning("channel", "hub error " + error.code + (error.retryable ? " (retryable)" : "") +
                                   ": " + error.message);
  const auto code = protocol::code_of(error);
  if (code == ErrorCode::kUnsupportedVersion) {
    core::log_error("channel", "the hub does not speak protocol version 1; closing (1002)");
    if (socket_) socket_->close(core::kCloseProtocolError, "unsupported version");
    return;
  }
  if (error.retryable) {
    if ((code == ErrorCode::kOutputSequenceGap || code == ErrorCode::kOutputIncomplete) &&
        error.stream && error.highest_accepted_seq) {
      sender_.rewind(error.attempt_id, *error.stream, *error.highest_accepted_seq,
                     error.next_offset);
      return;
    }
    // Anything else retryable (storage trouble at the hub, hello_required):
    // start a fresh session, which replays from the outbox.
    if (socket_) socket_->close(core::kCloseNormal, "retrying after " + error.code);
    return;
  }
  if (code == ErrorCode::kUnknownAttempt || code == ErrorCode::kAttemptDiscarded) {
    sender_.discard_attempt(error.attempt_id);
    if (handlers_.discarded) handlers_.discarded(error.attempt_id);
    return;
  }
  // Not retryable and about one output or gap frame: the stream cannot go
  // on past it (the hub would only answer every later frame with a gap
  // error). It ends there, and the final says how much did not arrive.
  if (auto output = protocol::parse_output_message_id(error.related_message_id)) {
    core::log_error("channel", "the hub refused " + error.related_message_id + " for good (" +
                                   error.code + "); the rest of that stream is not delivered");
    sender_.abandon(output->attempt_id, output->stream, output->seq, error.next_offset,
                    "the hub refused it (" + error.code + ")");
    return;
  }
  // About one started or final frame: resending it cannot help. Drop it.
  if (!error.related_message_id.empty()) {
    core::log_error("channel",
                    "dropping frame " + error.related_message_id + " (" + error.code + ")");
    sender_.drop_message(error.related_message_id);
  }
}

bool ResultChannel::on_unreadable(const std::string& text, const Error& error) {
  if (protocol::parse_error_code(error.code) == ErrorCode::kUnsupportedVersion) {
    // A newer hub: nothing it says can be trusted to mean what we think.
    core::log_error("channel", "the hub speaks another protocol version (" + error.message +
                                   "); this agent speaks 1. Closing (1002)");
    send_error(error.code, error.message, protocol::peek_message_id(text));
    if (socket_) socket_->close(core::kCloseProtocolError, "unsupported version");
    return false;
  }
  // Said back to the hub (docs/protocol.md 4.1, error), then ignored.
  core::log_warning("channel", "unreadable frame from the hub: " + error.message);
  send_error(error.code, error.message, protocol::peek_message_id(text));
  return true;
}

void ResultChannel::send_error(const std::string& code, const std::string& message,
                               const std::string& related_message_id) {
  if (!socket_ || !socket_->is_open()) return;
  protocol::Frame frame;
  frame.message_id = "agent:" + options_.agent + ":" + std::to_string(next_message_++);
  frame.agent_id = options_.agent;
  frame.sent_at = core::utc_now();
  protocol::ErrorFrame error;
  error.code = code;
  error.message = message.substr(0, 300);
  error.retryable = false;
  error.related_message_id = related_message_id;
  frame.payload = std::move(error);
  socket_->send_text(protocol::encode_frame(frame));
}

}  // namespace tether::agent
