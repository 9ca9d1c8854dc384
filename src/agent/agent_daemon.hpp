// AgentDaemon: `tether-agent run`, assembled.
//
//   start     open the outbox; settle attempts a previous run left marked
//             running (kill their process group if it is provably ours,
//             report them lost with what reached the outbox); then connect
//             the channel (which replays the outbox), the final courier and
//             the poller
//   SIGTERM   stop polling; let running tasks finish for shutdown_grace_s,
//   SIGINT    then cancel them (reason agent_shutdown); wait briefly for the
//             hub to ack what is pending; close the channel with 1001; exit 0
//   again     a second signal exits at once (the outbox is a SQLite
//             database: it stays consistent)
//
// Under systemd it reports READY, STATUS, STOPPING and watchdog pings. It
// answers `tether-agent status` on state_dir/status.sock and, if
// metrics_listen is set, serves Prometheus metrics; both render one
// AgentStatus snapshot.
#pragma once

#include <memory>

#include "agent/agent_config.hpp"
#include "agent/agent_status.hpp"
#include "agent/final_courier.hpp"
#include "agent/outbox.hpp"
#include "agent/output_pace.hpp"
#include "agent/poller.hpp"
#include "agent/result_channel.hpp"
#include "agent/task_executor.hpp"
#include "agent/task_isolation.hpp"
#include "core/co_group.hpp"
#include "core/metrics_server.hpp"
#include "core/report_socket.hpp"
#include "core/service_notifier.hpp"

namespace tether::agent {

class AgentDaemon {
 public:
  AgentDaemon(core::Loop& loop, AgentConfig config);
  ~AgentDaemon();

  // Runs until a signal; the exit status.
  core::Co<int> run();

  AgentStatus snapshot();

 private:
  // The status socket first (also the guard against a second agent on this
  // state directory), then the outbox and the metrics endpoint.
  Result<void> open_state();
  // The executor, the channel, the courier and the poller, wired together.
  void assemble_services();
  void recover();
  void log_settings() const;
  void start_task(protocol::TaskSpec spec);
  core::Co<void> run_task(protocol::TaskSpec spec);
  core::Co<void> shut_down();
  std::string one_line_status();

  core::Loop& loop_;
  AgentConfig config_;
  std::string instance_;  // this run of the process (hello, polls)
  core::ThreadPool pool_;
  std::unique_ptr<Outbox> outbox_;
  std::shared_ptr<TaskIsolation> isolation_;
  OutputPace output_pace_;  // shared by every stream's chunker (before executor_)
  std::unique_ptr<TaskExecutor> executor_;
  std::unique_ptr<ResultChannel> channel_;
  std::unique_ptr<FinalCourier> courier_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<core::ReportSocket> status_socket_;
  std::unique_ptr<core::MetricsServer> metrics_;
  // The coroutines running the tasks this agent took (run_task), one each.
  core::CoGroup task_runs_;
  core::Notification task_ended_;
  std::string started_at_;
  uint64_t started_ms_ = 0;
  bool stopping_ = false;
};

}  // namespace tether::agent
