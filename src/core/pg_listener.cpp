#include "core/pg_listener.hpp"

namespace tether::core {
namespace {

bool is_identifier(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;  // NAMEDATALEN - 1
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<PgListener>> PgListener::start(Loop& loop,
                                                      std::unique_ptr<PgConnection> connection,
                                                      const std::vector<std::string>& channels,
                                                      OnNotification on_notification,
                                                      OnLost on_lost) {
  for (const auto& channel : channels) {
    if (!is_identifier(channel))
      return make_error(Errc::kInvalid, "invalid_channel",
                        "notification channel '" + channel + "': expected [a-z_][a-z0-9_]*");
    // An identifier, checked above: nothing to quote.
    TETHER_TRY(listening, connection->execute_script("LISTEN " + channel));
  }
  std::unique_ptr<PgListener> listener(
      new PgListener(std::move(connection), std::move(on_notification), std::move(on_lost)));
  const int status =
      uv_poll_init(loop.get(), listener->watch_.get(), listener->connection_->socket());
  if (status != 0)
    return make_error(Errc::kIo, "io_error",
                      std::string("watching the notification connection: ") + uv_strerror(status));
  listener->watch_.mark_initialized();
  listener->watch_.get()->data = listener.get();
  uv_poll_start(listener->watch_.get(), UV_READABLE, &PgListener::on_readable);
  // Notifications that arrived with LISTEN's own answer are already read
  // off the socket: deliver them on a later turn, as any other.
  loop.defer([self = listener.get(), alive = std::weak_ptr<bool>(listener->alive_)] {
    if (!alive.expired() && !self->lost_) self->read();
  });
  return listener;
}

PgListener::~PgListener() {
  watch_.close();
}

void PgListener::on_readable(uv_poll_t* handle, int, int) {
  static_cast<PgListener*>(handle->data)->read();
}

void PgListener::read() {
  auto received = connection_->take_notifications();
  if (!received) {
    lost_ = true;
    uv_poll_stop(watch_.get());
    const OnLost on_lost = on_lost_;  // the call may destroy this listener
    on_lost(received.error());
    return;
  }
  for (const auto& notification : *received)
    on_notification_(notification);
}

}  // namespace tether::core
