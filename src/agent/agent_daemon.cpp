#include "agent/agent_daemon.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "agent/outbox_sink.hpp"
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
  auto digest = protocol::Sha256::restore(progress.digest_state);
  summary.sha256 = digest ? digest->hex_digest() : protocol::sha256_hex("");
  return summary;
}

}  // namespace

AgentDaemon::AgentDaemon(core::Loop& loop, AgentConfig config)
    : loop_(loop), config_(std::move(config)), pool_(kHttpThreads), task_ended_(loop) {}

AgentDaemon::~AgentDaemon() = default;

void AgentDaemon::recover() {
  const std::string boot = core::boot_id();
  for (const auto& attempt : outbox_->running_attempts()) {
    // Kill only what is provably ours: same boot, and the pid still names
    // the process that started at the recorded time.
    const bool ours = attempt.process_start != 0 && !boot.empty() && attempt.boot_id == boot &&
                      core::process_start_ticks(attempt.pid) == attempt.process_start;
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

void AgentDaemon::start_task(protocol::TaskSpec spec) {
  tasks_.spawn(run_task(std::move(spec)));
}

core::Task<void> AgentDaemon::run_task(protocol::TaskSpec spec) {
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

core::Task<int> AgentDaemon::run() {
  // Installed first: from here on a signal is ours to handle, not fatal.
  core::SignalSet signals(loop_, {SIGTERM, SIGINT});
  OutboxOptions outbox_options;
  outbox_options.agent_id = config_.agent;
  outbox_options.max_bytes = config_.outbox_max_bytes;
  outbox_options.policy = config_.outbox_full_policy;
  outbox_options.sync_full = config_.outbox_sync_full;
  auto outbox = Outbox::open(loop_, config_.state_dir, outbox_options);
  if (!outbox) {
    core::log_error("agent", outbox.error().message);
    co_return 1;
  }
  outbox_ = std::move(*outbox);

  ExecutorOptions executor_options;
  executor_options.max_concurrent_tasks = config_.max_concurrent_tasks;
  executor_options.runner.chunker.flush_interval_ms = config_.flush_interval_ms;
  executor_options.runner.chunker.chunk_bytes = config_.chunk_bytes;
  executor_options.runner.kill_grace_ms = config_.kill_grace_s * 1000;
  executor_ = std::make_unique<TaskExecutor>(loop_, executor_options);

  ChannelOptions channel_options{
      config_.hub_url,           config_.agent,      config_.token, config_.ca_file,
      config_.send_window_bytes, config_.keepalive_s};
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
  courier_ = std::make_unique<FinalCourier>(
      loop_, pool_, *outbox_, *channel_,
      CourierOptions{config_.hub_url, config_.token, config_.ca_file});
  poller_ = std::make_unique<Poller>(
      loop_, pool_,
      PollerOptions{config_.hub_url, config_.agent, config_.token, config_.ca_file,
                    config_.poll_wait_s},
      [this] { return executor_->admitted() < config_.max_concurrent_tasks; },
      [this](protocol::TaskSpec spec) { start_task(std::move(spec)); });

  recover();
  core::log_info("agent", "agent " + config_.agent + " for " + config_.hub_url.origin() +
                              ", outbox " + config_.state_dir + "/outbox.db (" +
                              std::to_string(outbox_->rows()) + " frames)");

  core::CancellationSource stop_polling;
  core::CancellationSource stop_sending;
  core::TaskGroup services;
  services.spawn(channel_->run(stop_sending.token()));
  services.spawn(courier_->run(stop_sending.token()));
  services.spawn(poller_->run(stop_polling.token()));

  auto first = co_await signals.next();
  core::log_info("agent", std::string("received ") +
                              (first.ok() ? strsignal(*first) : "a stop request") +
                              "; shutting down (a second signal exits at once)");
  // A second signal ends the process at once; everything stored is consistent.
  core::CancellationSource shutdown_done;
  auto second_signal = [](core::SignalSet& set, core::CancellationToken done) -> core::Task<void> {
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
  co_await tasks_.join();
  core::log_info("agent", "stopped");
  co_return 0;
}

core::Task<void> AgentDaemon::shut_down() {
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
  while (outbox_->rows() > 0 && channel_->live()) {
    loop_.update_time();
    if (loop_.now_ms() >= ack_end) break;
    co_await outbox_->changed().wait(ack_end - loop_.now_ms());
  }
  if (outbox_->rows() > 0) {
    core::log_info(
        "agent", std::to_string(outbox_->rows()) + " frames stay in the outbox for the next start");
  }
  channel_->close();
}

}  // namespace tether::agent
