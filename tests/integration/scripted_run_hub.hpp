// ScriptedRunHub: the operator API's fan-out run routes, played by the test
// from the contract (src/protocol/run_api.hpp, docs/protocol.md 11.1), to
// drive the real `tether` CLI through a run: its submission, its event
// stream (dropped mid-event and resumed with Last-Event-ID, or held open
// for an interrupt), its view, its cancellation and the stored output of
// its tasks.
//
//   POST /api/v1/runs               created_status, created_json
//   GET  /api/v1/runs               list_json
//   GET  /api/v1/runs/{id}          final_json
//   POST /api/v1/runs/{id}/cancel   202; on_cancel runs
//   GET  /api/v1/runs/{id}/events   events (below)
//   GET  /api/v1/tasks/{id}         task_json[id]
//   GET  /api/v1/tasks/{id}/events  task_events[id], then end
//   GET  /api/v1/tasks/{id}/output  outputs["{id}/{stream}"] from ?offset
//
// Every request is recorded. Run event streams: events whose id is above
// the Last-Event-ID (or ?last_event_id) asked for; output events left out
// for ?output=0. The first connection stops after `drop_after` events and
// half of the next, and closes; later ones send the rest and `end`,
// unless `hold_open`: then the stream stays open for send()/end().
#pragma once

#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/co.hpp"
#include "core/notification.hpp"
#include "core/web_server.hpp"

namespace tether::test {

struct ScriptedEvent {
  uint64_t id = 0;  // 0: none (end)
  std::string type;
  std::string data;
  std::string text() const;  // as it goes on the wire
};

class ScriptedRunHub {
 public:
  explicit ScriptedRunHub(core::Loop& loop);
  ~ScriptedRunHub();

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  int created_status = 201;
  std::string created_json;
  std::string list_json;
  std::string final_json;
  std::map<std::string, std::string> task_json;
  std::map<std::string, std::vector<ScriptedEvent>> task_events;
  std::vector<ScriptedEvent> events;
  size_t drop_after = std::numeric_limits<size_t>::max();
  bool hold_open = false;
  std::map<std::string, std::string> outputs;
  std::function<void()> on_cancel;

  // Every request so far, in order.
  const std::vector<core::HttpRequest>& requests() const { return requests_; }
  void requests_clear() { requests_.clear(); }
  // The requests whose method and path are these.
  std::vector<core::HttpRequest> requests_to(const std::string& method,
                                             const std::string& path) const;
  // Writes an event to the run's open stream (hold_open), or `end` and closes it.
  void send(const ScriptedEvent& event);
  void end();
  // Waits until `ready()` holds (checked after every request); false on timeout.
  core::Co<bool> wait_until(std::function<bool()> ready, uint64_t timeout_ms);

 private:
  void handle(const std::shared_ptr<core::HttpExchange>& exchange);
  void stream_run_events(const std::shared_ptr<core::HttpExchange>& exchange);
  void stream_task_events(const std::shared_ptr<core::HttpExchange>& exchange,
                          const std::string& task_id);

  core::Loop& loop_;
  std::unique_ptr<core::WebServer> server_;
  std::vector<core::HttpRequest> requests_;
  std::shared_ptr<core::HttpExchange> open_stream_;
  bool dropped_once_ = false;
  core::Notification changed_;
};

}  // namespace tether::test
