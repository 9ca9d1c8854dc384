#include "agent/agent_daemon.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "agent/attempt_runner.hpp"
#include "agent/outbox_sink.hpp"
#include "agent/task_init_program.hpp"
#include "core/log.hpp"
#include "core/proc_info.hpp"
#include "core/signal_set.hpp"
#include "core/timer.hpp"
#include "core/wall_clock.hpp"

namespace tether::agent {

namespace {

// Blocking HTTP (long poll, final PUTs) runs here, never on the loop thread:
// a long poll holds one thread for up to poll_wait_s.
constexpr size_t kHttpThreads = 4;
constexpr uint64_t kAckWaitOnShutdownMs = 5000;

protocol::StreamSummary recovered_summary(const StreamProgress& progress) {
  protocol::StreamSummary summary;
  summary.bytes = progress.bytes;
  summary.dropped_bytes = progress.dropped;
  summary.undelivered_bytes = progress.undelivered;
  auto digest = protocol::Sha256::restore(progress.digest_state);
  summary.sha256 = digest ? digest->hex_digest() : protocol::sha256_hex("");
  return summary;
}

// Names this run of the process for the hub (docs/protocol.md 8): unique,
// not secret.
std::string new_instance() {
  std::random_device random;
  char text[17];
  std::snprintf(text, sizeof text, "%08x%08x", random(), random());
  return text;
}

}  // namespace

AgentDaemon::AgentDaemon(core::Loop& loop, AgentConfig config)
    : loop_(loop),
      config_(std::move(config)),
      instance_(new_instance()),
      pool_(kHttpThreads),
      output_pace_(config_.flush_interval_ms, config_.flush_interval_busy_ms),
      task_ended_(loop) {}

AgentDaemon::~AgentDaemon() = default;

void AgentDaemon::recover() {
  const std::string boot = core::boot_id();
  for (const auto& attempt : outbox_->attempts().running_attempts()) {
    // Kill only what is provably ours: same boot, and the group's leader
    // (the task's init) or, if it died too, the command still names the
    // process that started at the recorded time (the group outlives its
    // leader while members live, so its id cannot have been reused).
    auto started_as_recorded = [](int pid, uint64_t start) {
      return start != 0 && core::process_start_ticks(pid) == start;
    };
    const bool this_boot = !boot.empty() && attempt.boot_id == boot;
    const bool ours =
        this_boot && (started_as_recorded(attempt.process_group, attempt.process_start) ||
                      started_as_recorded(attempt.pid, attempt.command_start));
    if (ours) {
      ::kill(-attempt.process_group, SIGKILL);
      core::log_warning("agent", "killed the leftover process group " +
                                     std::to_string(attempt.process_group) + " of " +
                                     attempt.attempt_id);
    }
    protocol::FinalReport report;
    report.status = protocol::AttemptStatus::kLost;
    report.started_at = attempt.started_at;
    report.finished_at = core::utc_now();
    report.stdout_summary = recovered_summary(attempt.out);
    report.stderr_summary = recovered_summary(attempt.err);
    report.error = "the agent restarted while the attempt ran; " +
                   std::to_string(attempt.out.bytes) + " bytes of stdout and " +
                   std::to_string(attempt.err.bytes) + " of stderr had reached the outbox" +
                   (ours ? "; its process group was killed" : "");
    core::log_warning(
        "agent", attempt.attempt_id + " was running when the agent stopped; reporting it lost");
    outbox_->append_final({attempt.task_id, attempt.attempt_id}, std::move(report));
  }
}

void AgentDaemon::log_settings() const {
  // Where each setting came from: a value from a place nobody looked (an
  // exported variable, a forgotten flag) is then one line away.
  std::string where;
  for (const char* key : {"hub_url", "agent", "token_file", "state_dir"}) {
    where += std::string(where.empty() ? "" : ", ") + key + " from " + config_.origin_of(key);
  }
  for (const auto& [key, origin] : config_.origins) {
    if (key == "hub_url" || key == "agent" || key == "token_file" || key == "state_dir") continue;
    where += ", " + key + " from " + origin;
  }
  core::log_info("agent", "settings: " + where + "; token read from " + config_.token_file);
  for (const auto& variable : config_.ignored_variables) {
    core::log_warning("agent", variable +
                                   " is set but ignored: it is the operator CLI's; the agent's "
                                   "token file is token_file or " +
                                   std::string(kTokenFileVariable));
  }
}

void AgentDaemon::start_task(protocol::TaskSpec spec) {
  task_runs_.spawn(run_task(std::move(spec)));
}

core::Co<void> AgentDaemon::run_task(protocol::TaskSpec spec) {
  const protocol::AttemptRef attempt{spec.task_id, spec.attempt_id};
  OutboxSink sink(*outbox_, attempt, config_.chunk_bytes);
  auto report = co_await executor_->execute(std::move(spec), sink);
  core::log_info("agent", attempt.attempt_id +
                              " ended: " + std::string(protocol::to_string(report.status)) +
                              (report.error.empty() ? "" : " (" + report.error + ")"));
  outbox_->append_final(attempt, std::move(report));
  task_ended_.notify_all();
  if (poller_) poller_->wake();  // a slot is free
}

AgentStatus AgentDaemon::snapshot() {
  AgentStatus status;
  status.version = TETHER_VERSION;
  status.agent = config_.agent;
  status.hub = config_.hub_url.origin();
  status.pid = static_cast<int>(::getpid());
  status.started_at = started_at_;
  loop_.update_time();
  status.uptime_s = (loop_.now_ms() - started_ms_) / 1000;
  status.stopping = stopping_;
  if (channel_) {
    const auto& counters = channel_->counters();
    status.channel_connected = channel_->live();
    status.channel_since = counters.since;
    status.channel_last_error = counters.last_error;
    status.channel_sessions = channel_->sessions();
    status.channel_connect_failures = counters.connect_failures;
    status.frames_sent = counters.frames_sent;
    status.batches_sent = counters.batches_sent;
    status.frame_bytes_sent = counters.bytes_sent;
    status.acks_received = counters.acks_received;
  }
  if (poller_) {
    status.last_poll_ok = poller_->last_success();
    status.last_poll_error = poller_->last_error();
    status.poll_failures = poller_->failures();
    status.tasks_received = poller_->tasks_received();
  }
  status.max_concurrent_tasks = config_.max_concurrent_tasks;
  if (outbox_) {
    for (const auto& attempt : outbox_->attempts().live_attempts()) {
      status.running.push_back({attempt.task_id, attempt.attempt_id, attempt.pid,
                                attempt.started_at, attempt.out.bytes, attempt.err.bytes});
    }
    status.outbox_rows = outbox_->frames().rows();
    status.outbox_bytes = outbox_->frames().bytes();
    status.outbox_max_bytes = config_.outbox_max_bytes;
    status.outbox_oldest_created_at = outbox_->frames().oldest_created_at();
    if (const int64_t oldest = core::parse_utc_ms(status.outbox_oldest_created_at); oldest >= 0) {
      status.outbox_oldest_age_ms = std::max<int64_t>(0, core::utc_now_ms() - oldest);
    }
    status.dropped_bytes = outbox_->attempts().dropped_total();
  }
  return status;
}

std::string AgentDaemon::one_line_status() {
  // What `systemctl status` shows under the unit's name.
  const auto status = snapshot();
  return std::string(status.channel_connected ? "connected to " : "not connected to ") +
         status.hub + "; " + std::to_string(status.running.size()) + " task(s) running; " +
         std::to_string(status.outbox_rows) + " frame(s) in the outbox";
}

Result<void> AgentDaemon::open_state() {
  // The status socket comes first: it is also the guard against a second
  // agent on this state directory, which must not touch the outbox at all.
  // Group-accessible (0660): operators in the agent's group may read status.
  if (::mkdir(config_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(
        Errc::kIo, "state_dir",
        "cannot create state directory '" + config_.state_dir + "': " + std::strerror(errno));
  }
  auto status_socket = core::ReportSocket::open(loop_, config_.state_dir + "/status.sock", 0660,
                                                [this] { return status_json(snapshot()); });
  if (!status_socket) return status_socket.error();
  status_socket_ = std::move(*status_socket);
  OutboxOptions outbox_options;
  outbox_options.agent_id = config_.agent;
  outbox_options.max_bytes = config_.outbox_max_bytes;
  outbox_options.min_free_bytes = config_.outbox_min_free_bytes;
  outbox_options.policy = config_.outbox_full_policy;
  outbox_options.sync_full = config_.outbox_sync_full;
  auto outbox = Outbox::open(loop_, config_.state_dir, outbox_options);
  if (!outbox) return outbox.error();
  outbox_ = std::move(*outbox);

  if (!config_.metrics_listen.empty()) {
    auto metrics = core::MetricsServer::start(loop_, config_.metrics_listen, "metrics_listen",
                                              [this] { return status_metrics(snapshot()); });
    if (!metrics) return metrics.error();
    metrics_ = std::move(*metrics);
    core::log_info("agent", "metrics on http://" + metrics_->host() + ":" +
                                std::to_string(metrics_->port()) + "/metrics");
  }
  return {};
}

void AgentDaemon::assemble_services() {
  ExecutorOptions executor_options;
  executor_options.max_concurrent_tasks = config_.max_concurrent_tasks;
  executor_options.runner.chunker.flush_interval_ms = config_.flush_interval_ms;
  executor_options.runner.chunker.pace = &output_pace_;
  executor_options.runner.chunker.chunk_bytes = config_.chunk_bytes;
  executor_options.runner.kill_grace_ms = config_.kill_grace_s * 1000;
  executor_options.runner.isolation = isolation_;
  executor_ = std::make_unique<TaskExecutor>(loop_, executor_options);

  const std::string token_source =
      "from " + config_.token_file + " (" + config_.origin_of("token_file") + ")";
  const HubEndpoint hub{
      config_.hub_url, config_.token, config_.ca_file,
      config_.insecure ? core::PlainTextPolicy::kAnywhere : core::PlainTextPolicy::kLoopbackOnly};
  ChannelOptions channel_options{
      hub,          config_.agent, config_.send_window_bytes, config_.keepalive_s, instance_,
      token_source, config_.labels};
  ChannelHandlers handlers;
  handlers.cancel = [this](const std::string& attempt_id, const std::string& reason) {
    executor_->cancel(attempt_id, reason);
  };
  handlers.wake = [this] {
    if (poller_) poller_->wake();
  };
  handlers.discarded = [this](const std::string& attempt_id) {
    executor_->cancel(attempt_id, "discarded by the hub");
  };
  channel_ = std::make_unique<ResultChannel>(loop_, *outbox_, channel_options, handlers);
  courier_ = std::make_unique<FinalCourier>(loop_, pool_, *outbox_, *channel_, CourierOptions{hub});
  poller_ = std::make_unique<Poller>(
      loop_, pool_, PollerOptions{hub, config_.agent, config_.poll_wait_s, instance_, token_source},
      [this] { return executor_->admitted() < config_.max_concurrent_tasks; },
      [this](protocol::TaskSpec spec) { start_task(std::move(spec)); },
      [this](const protocol::AttemptRef& attempt, const std::string& why) {
        // Answered like any attempt that never ran: a final, through the outbox.
        outbox_->append_final(attempt,
                              final_without_process(protocol::AttemptStatus::kRejected,
                                                    "the agent cannot run this task: " + why));
      });
}

core::Co<int> AgentDaemon::run() {
  // Installed first: from here on a signal is ours to handle, not fatal.
  core::SignalSet signals(loop_, {SIGTERM, SIGINT});
  core::ServiceNotifier systemd(loop_);
  started_at_ = core::utc_now();
  loop_.update_time();
  started_ms_ = loop_.now_ms();
  // Tasks may read what any user may: nothing the agent writes is for others.
  ::umask(::umask(0) | 007);
  auto isolation = TaskIsolation::from_config(config_);
  if (!isolation) {
    core::log_error("agent", isolation.error().message);
    co_return 2;  // a configuration error: restarting cannot fix it
  }
  isolation_ = std::move(*isolation);
  if (auto init = check_task_init_program(default_task_init_program()); !init) {
    core::log_error("agent", init.error().message);
    co_return 2;  // an install error: restarting cannot fix it
  }
  if (auto opened = open_state(); !opened) {
    core::log_error("agent", opened.error().message);
    status_socket_.reset();
    co_return 1;
  }
  assemble_services();
  recover();
  core::log_info("agent", "agent " + config_.agent + " for " + config_.hub_url.origin() +
                              ", outbox " + config_.state_dir + "/outbox.db (" +
                              std::to_string(outbox_->frames().rows()) + " frames)");
  log_settings();

  core::CancellationSource stop_polling;
  core::CancellationSource stop_sending;
  core::CoGroup services;
  services.spawn(channel_->run(stop_sending.token()));
  services.spawn(courier_->run(stop_sending.token()));
  services.spawn(poller_->run(stop_polling.token()));

  systemd.ready(one_line_status(), [this] { return one_line_status(); });

  auto first = co_await signals.next();
  stopping_ = true;
  systemd.stopping("shutting down: " + std::to_string(executor_->admitted()) +
                   " task(s) running, " + std::to_string(outbox_->frames().rows()) +
                   " frame(s) in the outbox");
  core::log_info("agent", std::string("received ") +
                              (first.ok() ? "SIG" + std::string(sigabbrev_np(*first))
                                          : std::string("a stop request")) +
                              "; shutting down (a second signal exits at once)");
  // A second signal ends the process at once; everything stored is consistent.
  core::CancellationSource shutdown_done;
  auto second_signal = [](core::SignalSet& set, core::CancellationToken done) -> core::Co<void> {
    auto again = co_await set.next(done);
    if (again.ok()) {
      core::log_warning("agent", "second signal: exiting now");
      std::_Exit(1);
    }
  };
  services.spawn(second_signal(signals, shutdown_done.token()));

  stop_polling.cancel();
  co_await shut_down();
  stop_sending.cancel();
  shutdown_done.cancel();
  co_await services.join();
  co_await task_runs_.join();
  metrics_.reset();
  status_socket_.reset();
  core::log_info("agent", "stopped");
  co_return 0;
}

core::Co<void> AgentDaemon::shut_down() {
  // Running tasks get the grace period to finish on their own...
  loop_.update_time();
  const uint64_t grace_end = loop_.now_ms() + config_.shutdown_grace_s * 1000;
  while (executor_->admitted() > 0) {
    loop_.update_time();
    if (loop_.now_ms() >= grace_end) break;
    co_await task_ended_.wait(grace_end - loop_.now_ms());
  }
  // ...then they are cancelled, and their finals go to the outbox.
  if (executor_->admitted() > 0) {
    core::log_info("agent",
                   "cancelling " + std::to_string(executor_->admitted()) + " running task(s)");
    executor_->cancel_all("agent_shutdown");
    while (executor_->admitted() > 0)
      co_await task_ended_.wait(1000);
  }
  // A short wait for the hub to ack what is pending; the rest stays in the
  // outbox for the next start.
  loop_.update_time();
  const uint64_t ack_end = loop_.now_ms() + kAckWaitOnShutdownMs;
  while (outbox_->frames().rows() > 0 && channel_->live()) {
    loop_.update_time();
    if (loop_.now_ms() >= ack_end) break;
    co_await outbox_->changed().wait(ack_end - loop_.now_ms());
  }
  if (outbox_->frames().rows() > 0) {
    core::log_info("agent", std::to_string(outbox_->frames().rows()) +
                                " frames stay in the outbox for the next start");
  }
  channel_->close();
}

}  // namespace tether::agent
