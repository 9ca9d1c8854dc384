// PollWaiters: agents' long polls for their next task (docs/protocol.md 3).
//
// A poll is answered at once when a task is queued for the agent; otherwise
// it waits, up to `wait` seconds, for one to be queued. A task goes out only
// after its dispatch has committed, so a hub crash can never hand out an
// attempt it does not remember.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/timer.hpp"
#include "core/web_server.hpp"
#include "hub/agent_channels.hpp"
#include "hub/busy_retries.hpp"
#include "hub/dispatch_service.hpp"

namespace tether::hub {

inline constexpr int kMaxPollWaitSeconds = 60;
inline constexpr size_t kMaxParkedPollsPerAgent = 4;

class PollWaiters {
 public:
  // `lease_ms` is told to agents with each task (docs/protocol.md 3).
  PollWaiters(core::Loop& loop, core::SqlStore& store, DispatchService& dispatch,
              AgentDirectory& agents, int64_t lease_ms, AgentChannels& channels)
      : loop_(loop),
        store_(store),
        dispatch_(dispatch),
        agents_(agents),
        lease_ms_(lease_ms),
        channels_(channels),
        busy_(loop, 50) {}

  // `instance`: the agent process that polls (empty if it did not say).
  void poll(const std::string& agent, const std::string& instance,
            std::shared_ptr<core::HttpExchange> exchange, int wait_s);
  // A task was queued for `agent`: answer a parked poll, or wake the agent.
  // Agent "": a pool task was queued; parked agents whose labels match a
  // queued pool task's selector are answered one by one, until no pool task
  // is left queued or none of them is parked.
  void task_queued(const std::string& agent);
  // Looks at every parked poll again, as if a pool task and a task for each
  // parked agent were queued: for when wakes may have been missed (the
  // other hubs' notices, peer_bus.hpp). A poll with nothing to take gets
  // 204 and its agent polls again.
  void wake_all();
  // Every parked poll gets 503; later polls too.
  void shutdown();

 private:
  struct Waiter {
    std::string agent;
    std::string instance;
    std::shared_ptr<core::HttpExchange> exchange;
    std::unique_ptr<core::Timer> timer;
  };
  bool answer(const std::string& agent, const std::string& instance,
              const std::shared_ptr<core::HttpExchange>& exchange);
  void remove(const std::shared_ptr<Waiter>& waiter);
  // Drops `agent`'s parked polls whose client has gone (an agent that
  // stopped, a connection a proxy cut): a task must never go to one.
  void drop_departed(const std::string& agent);
  void retract_later(const std::string& attempt_id, const std::string& reason);
  void pool_task_queued();
  // The agents with a parked poll, each once (a copy: answering changes parked_).
  std::vector<std::string> parked_agents() const;

  core::Loop& loop_;
  core::SqlStore& store_;
  DispatchService& dispatch_;
  AgentDirectory& agents_;
  int64_t lease_ms_;
  AgentChannels& channels_;
  BusyRetries busy_;
  std::multimap<std::string, std::shared_ptr<Waiter>> parked_;
  bool shutting_down_ = false;
  uint64_t departed_ = 0;

 public:
  // Parked polls found with their client gone, since start (for metrics).
  uint64_t departed() const { return departed_; }
  size_t parked() const { return parked_.size(); }
};

core::HttpResponse unavailable_response(int status, const std::string& code,
                                        const std::string& message, int retry_after_s);

}  // namespace tether::hub
