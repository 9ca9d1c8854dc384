// PgListener: PostgreSQL notifications (LISTEN/NOTIFY) delivered on the
// loop, with no polling of the database: the connection's socket is watched
// with uv_poll, and each NOTIFY on a channel listened to reaches
// on_notification in the order the server sent them (PostgreSQL delivers
// notifications between transactions, in commit order; docs: "NOTIFY").
//
// The connection is used for nothing else. When it is lost (the server
// restarted, a network cut) on_lost runs once, on the loop, after the watch
// has stopped; notifications sent meanwhile are gone, so the owner makes a
// new listener and re-reads whatever state the notifications stood for.
// on_lost may destroy the listener; on_notification must not.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/loop.hpp"
#include "core/pg_connection.hpp"
#include "core/result.hpp"
#include "core/uv_handle.hpp"

namespace tether::core {

class PgListener {
 public:
  using OnNotification = std::function<void(const PgNotification&)>;
  using OnLost = std::function<void(const Error&)>;

  // LISTENs on each of `channels` (identifiers: [a-z_][a-z0-9_]*, checked)
  // and starts watching. Errors: kInvalid for a bad channel name, and the
  // connection's (pg_connection.hpp).
  static Result<std::unique_ptr<PgListener>> start(Loop& loop,
                                                   std::unique_ptr<PgConnection> connection,
                                                   const std::vector<std::string>& channels,
                                                   OnNotification on_notification, OnLost on_lost);
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;
  ~PgListener();

  bool lost() const { return lost_; }

 private:
  PgListener(std::unique_ptr<PgConnection> connection, OnNotification on_notification,
             OnLost on_lost)
      : connection_(std::move(connection)),
        on_notification_(std::move(on_notification)),
        on_lost_(std::move(on_lost)) {}
  static void on_readable(uv_poll_t* handle, int status, int events);
  void read();

  std::unique_ptr<PgConnection> connection_;
  OnNotification on_notification_;
  OnLost on_lost_;
  UvHandle<uv_poll_t> watch_;
  bool lost_ = false;
  // Expires with the listener: a deferred read checks it first.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tether::core
