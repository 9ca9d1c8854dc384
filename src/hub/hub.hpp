// Hub: the reference control plane, assembled. One process, one loop, one
// port for agent HTTP, agent WebSockets, the operator API and SSE.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/loop.hpp"
#include "core/metrics_server.hpp"
#include "core/result.hpp"
#include "core/timer.hpp"
#include "core/web_server.hpp"
#include "hub/agent_channels.hpp"
#include "hub/auth_throttle.hpp"
#include "hub/hub_api.hpp"
#include "hub/peer_bus.hpp"
#include "hub/poll_waiters.hpp"
#include "hub/secret_vault.hpp"
#include "hub/task_secrets.hpp"
#include "hub/web_ui.hpp"

namespace tether::hub {

struct HubOptions {
  std::string data_dir;
  // Empty uri: hub.db in data_dir. A postgresql:// URI: that database, which
  // several hubs may share (docs/operations.md).
  DatabaseSettings database;
  std::string listen = "127.0.0.1:7070";
  std::string tls_certificate_file;
  std::string tls_private_key_file;
  // Plain HTTP on a non-loopback address sends tokens in the clear; allowed
  // only when asked for (a TLS-terminating proxy in front, on a private net).
  bool insecure_listen = false;
  int64_t lease_s = 60;
  SyncMode sync = SyncMode::kNormal;
  std::string metrics_listen;  // empty: no Prometheus endpoint
  // Live SSE streams at once; more get 503 too_many_streams.
  size_t max_event_streams = 256;
  // Proxies whose X-Forwarded-For names the client (address literals; none
  // by default): see AuthThrottle.
  std::vector<std::string> trusted_proxies;
  // Connections at once (0: the open-files limit less a reserve), and from
  // one address; see core::WebServerOptions.
  size_t max_connections = 0;
  size_t max_connections_per_address = 1024;
  // Time for a request's headers, and for each pause in its body.
  unsigned int request_timeout_s = 10;
  // The web UI's address (docs/ui.md); empty: no web UI. It uses the same
  // TLS files as --listen, and the same rule for plain HTTP.
  std::string ui_listen;
  std::string ui_dev_assets_dir;  // see WebUiOptions::dev_assets_dir
};

class Hub {
 public:
  static Result<std::unique_ptr<Hub>> start(core::Loop& loop, HubOptions options);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  ~Hub();

  int port() const { return server_->port(); }
  // The web UI's port; 0 without --ui-listen.
  int ui_port() const { return ui_ ? ui_->port() : 0; }
  // Prometheus text for GET /metrics on metrics_listen.
  std::string metrics_text();
  // One line for `systemctl status`.
  std::string one_line_status() const;
  // Answers parked polls with 503, ends SSE streams and closes channels with
  // 1001; commits what is pending. The hub can then be destroyed.
  void shut_down();

 private:
  Hub(core::Loop& loop, HubOptions options, std::unique_ptr<core::SqlStore> store,
      SecretVault vault);
  // A key just made while hub.db holds secrets sealed with another: say so.
  void check_key_matches();
  void schedule_lease_check();
  // On PostgreSQL: hears the other hubs on the database (peer_bus.hpp).
  Result<void> listen_to_peers(core::Loop& loop);

  HubOptions options_;
  std::unique_ptr<core::SqlStore> store_;
  AgentDirectory agents_;
  TokenStore tokens_;
  AuditLog audit_;
  AuthThrottle throttle_;
  TaskRepository tasks_;
  SecretVault vault_;
  TaskSecrets secrets_;
  EventLog events_;
  EventHub viewers_;
  OutputLedger ledger_;
  TaskTransitions transitions_;
  DispatchService dispatch_;
  RunRepository run_records_;
  RunCoordinator runs_;
  LeaseKeeper leases_;
  AgentFrameService frames_;
  AgentChannels channels_;
  PollWaiters polls_;
  HubApi api_;
  core::Timer lease_timer_;
  std::unique_ptr<core::WebServer> server_;
  BrowserSessions sessions_;
  std::unique_ptr<WebUi> ui_;  // after api_ and sessions_, which it uses
  std::unique_ptr<core::MetricsServer> metrics_;
  std::unique_ptr<PeerBus> peers_;  // last: its handlers use the parts above
};

}  // namespace tether::hub
