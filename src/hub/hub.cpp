#include "hub/hub.hpp"

#include "core/listen_address.hpp"
#include "core/log.hpp"
#include "core/resolver.hpp"
#include "protocol/frames.hpp"

namespace tether::hub {

namespace {
// The loop thread waits this long at most for a lock another process holds
// on hub.db; work that still finds it busy is retried (BusyRetries).
constexpr int kServeBusyTimeoutMs = 50;

// The host and port to bind for `listen` (given as `flag`). A name (--listen
// localhost:7071) is bound at one of its addresses: the first IPv4 one if it
// has any (clients of "localhost" try each address, and 127.0.0.1 is the one
// every Debian lists), else the first. Plain HTTP off loopback is refused
// unless `insecure` (tokens and session cookies would cross in the clear).
Result<std::pair<std::string, int>> bind_address(const std::string& listen, const char* flag,
                                                 bool tls, bool insecure) {
  TETHER_TRY(address, core::parse_listen_address(listen, flag));
  auto resolved = core::resolve_host(address->first);
  if (!resolved)
    return make_error(Errc::kIo, "listen_failed",
                      std::string(flag) + " " + listen + ": " + resolved.error().message);
  std::string host = resolved->front();
  for (const auto& candidate : *resolved) {
    if (candidate.find(':') == std::string::npos) {
      host = candidate;
      break;
    }
  }
  if (!tls && !core::is_loopback_address(host) && !insecure) {
    return make_error(Errc::kInvalid, "insecure_listen",
                      "refusing plain HTTP on " + listen + " (" + flag +
                          "): tokens would cross the network in the clear. Give "
                          "--tls-cert and --tls-key, listen on 127.0.0.1 behind a TLS proxy, or "
                          "pass --insecure-listen if you really mean it");
  }
  return std::make_pair(host, address->second);
}

}  // namespace

Hub::Hub(core::Loop& loop, HubOptions options, std::unique_ptr<core::SqlStore> store,
         SecretVault vault)
    : options_(std::move(options)),
      store_(std::move(store)),
      agents_(*store_),
      tokens_(*store_, agents_),
      audit_(*store_),
      throttle_(AuthThrottleLimits{}, options_.trusted_proxies),
      tasks_(*store_),
      vault_(std::move(vault)),
      secrets_(*store_, vault_),
      events_(*store_),
      ledger_(events_),
      transitions_(*store_, tasks_, secrets_, events_, viewers_, ledger_),
      dispatch_(tasks_, agents_, secrets_, transitions_),
      run_records_(*store_),
      runs_(run_records_, tasks_, agents_, dispatch_, transitions_),
      leases_(tasks_, transitions_, agents_, options_.lease_s * 1000),
      frames_(tasks_, events_, ledger_, transitions_, agents_, leases_),
      channels_(loop, *store_, tokens_, throttle_, frames_, leases_),
      polls_(loop, *store_, dispatch_, agents_, leases_.lease_ms(), channels_),
      api_(HubParts{loop, *store_, tokens_, agents_, tasks_, events_, viewers_, dispatch_, frames_,
                    leases_, channels_, polls_, throttle_, audit_, run_records_, runs_},
           options_.max_event_streams),
      lease_timer_(loop),
      sessions_(*store_, tokens_) {
  store_->attach_loop(loop);
  // If a commit fails, what the ledger remembers may not be stored: forget
  // it and drop the channels, so agents reconnect and replay from their
  // outboxes against what really is stored.
  store_->set_on_commit_failed([this](const Error&) {
    ledger_.clear();
    channels_.close_all(1011, "storage failure; reconnect and replay");
  });
  AgentNotifier notifier;
  notifier.is_connected = [this](const std::string& agent) {
    return channels_.is_connected(agent);
  };
  notifier.send_cancel = [this](const std::string& agent, const protocol::TaskCancel& cancel) {
    channels_.send_cancel(agent, cancel);
  };
  notifier.task_queued = [this](const std::string& agent) { polls_.task_queued(agent); };
  transitions_.set_notifier(std::move(notifier));
  runs_.set_online([this](const std::string& agent) { return leases_.online(agent); });
  transitions_.set_on_run_task_ended(
      [this](const std::string& run_id) { runs_.task_ended(run_id); });
}

Hub::~Hub() {
  lease_timer_.stop();
  ui_.reset();
  server_.reset();
  (void)store_->commit();
}

Result<std::unique_ptr<Hub>> Hub::start(core::Loop& loop, HubOptions options) {
  const bool tls = !options.tls_certificate_file.empty() || !options.tls_private_key_file.empty();
  if (tls && (options.tls_certificate_file.empty() || options.tls_private_key_file.empty())) {
    return make_error(Errc::kInvalid, "invalid_tls", "--tls-cert and --tls-key go together");
  }
  TETHER_TRY(bound, bind_address(options.listen, "--listen", tls, options.insecure_listen));
  const std::string host = bound->first;
  std::optional<std::pair<std::string, int>> ui_bound;
  if (!options.ui_listen.empty()) {
    TETHER_TRY(ui, bind_address(options.ui_listen, "--ui-listen", tls, options.insecure_listen));
    ui_bound = *ui;
  }
  if (options.data_dir.empty())
    return make_error(Errc::kInvalid, "invalid_data_dir", "--data-dir is required");
  TETHER_TRY(store, open_hub_database(options.data_dir, options.database, options.sync,
                                      kServeBusyTimeoutMs));
  TETHER_TRY(vault, SecretVault::open(options.data_dir));
  std::unique_ptr<Hub> hub(new Hub(loop, std::move(options), std::move(*store), std::move(*vault)));
  hub->check_key_matches();
  TETHER_TRY(listening, hub->listen_to_peers(loop));

  core::WebServerOptions server_options;
  server_options.bind_address = host;
  server_options.port = bound->second;
  server_options.tls_certificate_file = hub->options_.tls_certificate_file;
  server_options.tls_private_key_file = hub->options_.tls_private_key_file;
  server_options.max_body_bytes = protocol::kMaxFrameBytes;
  server_options.max_message_bytes = protocol::kMaxFrameBytes;
  server_options.max_connections = hub->options_.max_connections;
  server_options.max_connections_per_address = hub->options_.max_connections_per_address;
  server_options.request_timeout_s = hub->options_.request_timeout_s;
  core::WebServer::Handlers handlers;
  Hub* raw = hub.get();
  handlers.on_request = [raw](std::shared_ptr<core::HttpExchange> exchange) {
    raw->api_.handle(exchange);
  };
  handlers.on_headers = [raw](const core::HttpRequest& request) {
    return raw->api_.check_before_body(request);
  };
  handlers.on_upgrade = [raw](const core::HttpRequest& request) {
    return raw->channels_.authorize(request);
  };
  handlers.on_websocket = [raw](std::shared_ptr<core::WebSocketConnection> socket) {
    raw->channels_.adopt(std::move(socket));
  };
  TETHER_TRY(server, core::WebServer::start(loop, server_options, std::move(handlers)));
  hub->server_ = std::move(*server);
  if (!hub->options_.metrics_listen.empty()) {
    auto metrics =
        core::MetricsServer::start(loop, hub->options_.metrics_listen, "--metrics-listen",
                                   [raw] { return raw->metrics_text(); });
    if (!metrics) return metrics.error();
    hub->metrics_ = std::move(*metrics);
    core::log_info("hub", "metrics on http://" + hub->metrics_->host() + ":" +
                              std::to_string(hub->metrics_->port()) + "/metrics");
  }
  if (ui_bound) {
    WebUiOptions ui_options;
    ui_options.bind_address = ui_bound->first;
    ui_options.port = ui_bound->second;
    ui_options.tls_certificate_file = hub->options_.tls_certificate_file;
    ui_options.tls_private_key_file = hub->options_.tls_private_key_file;
    ui_options.dev_assets_dir = hub->options_.ui_dev_assets_dir;
    ui_options.max_body_bytes = protocol::kMaxFrameBytes;
    ui_options.request_timeout_s = hub->options_.request_timeout_s;
    TETHER_TRY(ui, WebUi::start(loop, std::move(ui_options), *hub->store_, hub->api_,
                                hub->sessions_, hub->throttle_));
    hub->ui_ = std::move(*ui);
    core::log_info("hub", std::string("web UI on ") + (tls ? "https://" : "http://") +
                              hub->ui_->host() + ":" + std::to_string(hub->ui_->port()) + "/");
  }
  hub->schedule_lease_check();
  core::log_info(
      "hub", std::string("listening on ") + (tls ? "https://" : "http://") + host + ":" +
                 std::to_string(hub->server_->port()) + ", data in " + hub->store_->name() +
                 "; at most " + std::to_string(hub->server_->max_connections()) + " connections, " +
                 std::to_string(server_options.max_connections_per_address) + " from one address");
  return hub;
}

void Hub::check_key_matches() {
  if (!vault_.created()) {
    core::log_info("hub", "task secrets are sealed with the key in " + vault_.path());
    return;
  }
  uint64_t holding = 0;
  (void)store_->guarded("counting stored secrets", [&] { holding = secrets_.tasks_holding(); });
  if (holding == 0) {
    core::log_info("hub", "made a new key for task secrets: " + vault_.path() +
                              " (back it up with the database)");
    return;
  }
  core::log_warning("hub", "made a new key for task secrets, " + vault_.path() +
                               ", but the database " + "holds the secrets of " +
                               std::to_string(holding) +
                               " task(s) sealed with another key: they fail when dispatched. "
                               "If you have the old key, stop the hub and put it back");
}

Result<void> Hub::listen_to_peers(core::Loop& loop) {
  auto* store = dynamic_cast<core::PgStore*>(store_.get());
  if (store == nullptr) return {};  // hub.db: one hub
  PeerBus::Handlers handlers;
  handlers.wake = [this](const std::string& agent) { polls_.task_queued(agent); };
  handlers.cancel = [this](const std::string& agent, const protocol::TaskCancel& cancel) {
    if (channels_.is_connected(agent)) channels_.send_cancel(agent, cancel);
  };
  handlers.lost = [this] {
    polls_.wake_all();
    // Each viewer resumes with Last-Event-ID, replaying what it missed.
    api_.close_streams();
  };
  peers_ = std::make_unique<PeerBus>(loop, *store, pg_settings(options_.database), events_,
                                     viewers_, std::move(handlers));
  if (auto started = peers_->start(); !started) {
    return make_error(started.error().kind, started.error().code,
                      "listening to the other hubs: " + started.error().message);
  }
  transitions_.set_peers(peers_.get());
  core::log_info("hub", "hearing the other hubs on this database (LISTEN tether_hub)");
  return {};
}

void Hub::schedule_lease_check() {
  lease_timer_.start(1000, [this] {
    // Busy (hub.db locked elsewhere) or failed: the next check runs in a second.
    (void)store_->guarded("lease check", [this] { leases_.check_leases(); });
    (void)store_->guarded("run offline check", [this] { runs_.sweep(wall_clock_ms()); });
    schedule_lease_check();
  });
}

std::string Hub::metrics_text() {
  core::MetricsText text;
  text.metric("tether_hub_info", "gauge", "The hub's version; always 1.", 1,
              core::MetricsText::label("version", TETHER_VERSION));
  text.metric("tether_hub_agents_connected", "gauge", "Agents with a result channel open.",
              static_cast<double>(channels_.count()));
  const auto& counters = channels_.counters();
  text.metric("tether_hub_channel_connections_total", "counter",
              "Result channels accepted since start.", static_cast<double>(counters.connections));
  text.metric("tether_hub_channel_frames_received_total", "counter",
              "Frames received on result channels.", static_cast<double>(counters.frames));
  text.metric("tether_hub_channel_frames_rejected_total", "counter",
              "Frames answered with an error frame.", static_cast<double>(counters.rejected));
  text.metric("tether_hub_output_bytes_received_total", "counter",
              "Task output bytes received on result channels (resends included).",
              static_cast<double>(counters.output_bytes));
  text.metric("tether_hub_polls_parked", "gauge", "Agents' long polls waiting for a task.",
              static_cast<double>(polls_.parked()));
  text.metric("tether_hub_polls_departed_total", "counter",
              "Parked long polls found with their agent gone, and dropped.",
              static_cast<double>(polls_.departed()));
  text.metric("tether_hub_event_streams", "gauge", "Server-Sent Event streams open.",
              static_cast<double>(api_.open_streams()));
  text.metric("tether_hub_auth_refused_total", "counter",
              "Requests refused (429) because their source failed to authenticate too often.",
              static_cast<double>(throttle_.refused()));
  text.metric("tether_hub_auth_blocked_sources_total", "counter",
              "Times a source spent its budget of authentication failures.",
              static_cast<double>(throttle_.blocked_sources_total()));
  text.metric("tether_hub_connections", "gauge", "Client connections open (HTTP and WebSocket).",
              static_cast<double>(server_->open_connections()));
  text.metric("tether_hub_connections_max", "gauge",
              "The most connections served at once (--max-connections).",
              static_cast<double>(server_->max_connections()));
  text.metric("tether_hub_connections_refused_total", "counter",
              "Connections closed on accept: over --max-connections or "
              "--max-connections-per-address.",
              static_cast<double>(server_->refused_connections()));
  text.metric("tether_hub_accept_failures_total", "counter",
              "accept() failures (out of file descriptors); each pauses accepting for 1 s.",
              static_cast<double>(server_->accept_failures()));
  if (peers_) {
    text.metric("tether_hub_peer_notices_received_total", "counter",
                "Notices heard from the hubs on the database (its own included).",
                static_cast<double>(peers_->received()));
    text.metric("tether_hub_peer_listen_connections_total", "counter",
                "Connections made to hear the other hubs (more than 1: it was lost).",
                static_cast<double>(peers_->connections()));
  }
  text.family("tether_hub_tasks", "gauge", "Tasks stored, by state.");
  try {
    // tasks_by_state covers this: an index scan, no table reads.
    auto states = store_->query("SELECT state, count(*) FROM tasks GROUP BY state ORDER BY state");
    while (states.executeStep()) {
      text.sample("tether_hub_tasks", static_cast<double>(states.getColumn(1).getInt64()),
                  core::MetricsText::label("state", states.getColumn(0).getString()));
    }
  } catch (const std::exception& e) {
    core::log_warning("hub", std::string("metrics: cannot count tasks: ") + e.what());
  }
  return text.str();
}

std::string Hub::one_line_status() const {
  return "listening on port " + std::to_string(server_->port()) + "; " +
         std::to_string(channels_.count()) + " agent(s) connected; " +
         std::to_string(api_.open_streams()) + " event stream(s)";
}

void Hub::shut_down() {
  core::log_info("hub", "shutting down");
  metrics_.reset();
  ui_.reset();
  lease_timer_.stop();
  polls_.shutdown();
  api_.close_streams();
  channels_.close_all(core::kCloseGoingAway, "hub shutting down");
  (void)store_->commit();
}

}  // namespace tether::hub
