// PeerBus: what the hubs serving one PostgreSQL database tell each other.
//
// Each hub LISTENs on one channel, tether_hub, on a connection of its own
// (core::PgListener: the socket is watched on the loop, nothing polls the
// database). What the other hubs must learn from a turn is NOTIFYed inside
// the turn's transaction, so PostgreSQL delivers it only if the turn
// commits, once, to every listening hub (the sender too), between
// transactions and in commit order (PostgreSQL docs, "NOTIFY"). A turn's
// notices are gathered as its entry points make them (a failed entry
// point's go with its writes) and sent in one statement just before the
// COMMIT, in the order made: one round trip per turn, not one per notice.
//
// Notices (the payload: words separated by one space; agent, task, attempt
// and run ids follow the id rule of docs/protocol.md 2.1, so hold none):
//   "wake AGENT"      a task was queued for AGENT, or a target of its freed;
//   "wake"            a pool task was queued. Each hub answers the parked
//                     polls it holds (PollWaiters::task_queued).
//   "cancel AGENT TASK ATTEMPT\nREASON"
//                     the hub holding AGENT's result channel sends the cancel.
//   "event ID TASK [RUN]"
//                     event ID of TASK (of RUN) is stored; a hub with viewers
//                     of either reads it and publishes it (EventHub).
// A hub acts on its own wake and cancel notices at once, after its commit,
// and skips them when they come back. Its own events, though, reach its
// viewers only when their notice comes back: every hub then publishes the
// events of a task in one order, commit order, which is id order because
// EventLog serialises the events of a task (or run) across hubs. So an SSE
// viewer never gets an event with a smaller id after a larger one, and its
// Last-Event-ID never skips one.
//
// When the listening connection is lost, notices sent meanwhile are gone:
// on_lost runs (parked polls are answered so their agents poll again,
// viewers are closed so they resume with Last-Event-ID), and the bus
// listens again, backing off, and runs on_lost once more when it is back.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backoff.hpp"
#include "core/commit_batch.hpp"
#include "core/loop.hpp"
#include "core/pg_listener.hpp"
#include "core/pg_store.hpp"
#include "core/timer.hpp"
#include "hub/event_hub.hpp"
#include "hub/event_log.hpp"
#include "protocol/frames.hpp"

namespace tether::hub {

class PeerBus {
 public:
  static constexpr const char* kChannel = "tether_hub";

  struct Handlers {
    // Another hub queued a task for `agent` ("": a pool task).
    std::function<void(const std::string& agent)> wake;
    // Another hub cancelled an attempt of `agent`.
    std::function<void(const std::string& agent, const protocol::TaskCancel& cancel)> cancel;
    // Notices may have been missed (see above).
    std::function<void()> lost;
  };

  PeerBus(core::Loop& loop, core::PgStore& store, core::PgSettings settings, EventLog& events,
          EventHub& viewers, Handlers handlers);
  PeerBus(const PeerBus&) = delete;
  PeerBus& operator=(const PeerBus&) = delete;

  // Connects and LISTENs. Errors: PgConnection::connect's.
  Result<void> start();

  // --- inside a turn's write transaction (throw as SqlStore::execute) ---
  void wake(const std::string& agent);
  void cancel(const std::string& agent, const protocol::TaskCancel& cancel);
  // `event` was stored in this turn: published to this hub's viewers when
  // its notice comes back (see above).
  void publish(std::shared_ptr<const StoredEvent> event);

  // Notices received, and listening connections made since start().
  uint64_t received() const { return received_; }
  uint64_t connections() const { return connections_; }

 private:
  // A notice queued for the turn's commit: its payload, or the event it
  // announces (whose id is known only once its insert ran: EventLog).
  struct Notice {
    std::string payload;
    std::shared_ptr<const StoredEvent> event;
  };
  // Queues a notice for the turn's commit: a turn's notices go in one
  // statement (send_batch), just before its COMMIT.
  void notify(Notice notice);
  void send_batch(const std::vector<Notice>& batch);
  void on_notice(const core::PgNotification& notice);
  void on_event(const std::string& fields);
  void on_listener_lost(const Error& error);
  void listen_again();

  core::Loop& loop_;
  core::PgStore& store_;
  core::PgSettings settings_;
  EventLog& events_;
  EventHub& viewers_;
  Handlers handlers_;
  std::unique_ptr<core::PgListener> listener_;
  core::Timer retry_;
  core::Backoff backoff_{500, 30'000};
  // This hub's own committed events that viewers here wait for, by id,
  // until their notice comes back; emptied when the listener is lost.
  std::map<uint64_t, std::shared_ptr<const StoredEvent>> own_events_;
  // The committing turn's notices, in the order queued (see notify).
  core::CommitBatch<Notice> batch_;
  uint64_t received_ = 0;
  uint64_t connections_ = 0;
  // Expires with the bus: a deferred call checks it first.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tether::hub
