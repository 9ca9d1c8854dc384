#include "scripted_run_hub.hpp"

#include <catch2/catch.hpp>

namespace tether::test {

namespace {

core::HttpResponse json(int status, std::string body) {
  core::HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

core::HttpResponse not_found(const std::string& path) {
  return json(404, R"({"error":{"code":"not_found","message":"scripted: no )" + path +
                       R"(","retryable":false}})");
}

const std::vector<std::pair<std::string, std::string>> kStreamHeaders = {
    {"cache-control", "no-cache"}, {"x-accel-buffering", "no"}};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "/api/v1/tasks/t-1/events" -> "t-1" for prefix "/api/v1/tasks/" and suffix "/events".
std::string middle(const std::string& path, const std::string& prefix, const std::string& suffix) {
  return path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
}

}  // namespace

std::string ScriptedEvent::text() const {
  std::string out;
  if (id) out += "id: " + std::to_string(id) + "\n";
  return out + "event: " + type + "\ndata: " + data + "\n\n";
}

ScriptedRunHub::ScriptedRunHub(core::Loop& loop) : loop_(loop), changed_(loop) {
  core::WebServer::Handlers handlers;
  handlers.on_request = [this](std::shared_ptr<core::HttpExchange> exchange) {
    requests_.push_back(exchange->request());
    handle(exchange);
    changed_.notify_all();
  };
  handlers.on_upgrade = [](const core::HttpRequest&) {
    return core::UpgradeDecision{404, R"({"error":{"code":"not_found","message":"no"}})"};
  };
  handlers.on_websocket = [](std::shared_ptr<core::WebSocketConnection>) {};
  auto started = core::WebServer::start(loop_, core::WebServerOptions(), std::move(handlers));
  REQUIRE(started.ok());
  server_ = std::move(*started);
}

ScriptedRunHub::~ScriptedRunHub() {
  if (open_stream_) open_stream_->finish();
}

std::vector<core::HttpRequest> ScriptedRunHub::requests_to(const std::string& method,
                                                           const std::string& path) const {
  std::vector<core::HttpRequest> found;
  for (const auto& request : requests_) {
    if (request.method == method && request.path == path) found.push_back(request);
  }
  return found;
}

void ScriptedRunHub::send(const ScriptedEvent& event) {
  REQUIRE(open_stream_);
  open_stream_->write(event.text());
}

void ScriptedRunHub::end() {
  REQUIRE(open_stream_);
  open_stream_->write(ScriptedEvent{0, "end", "{}"}.text());
  open_stream_->finish();
  open_stream_.reset();
}

core::Co<bool> ScriptedRunHub::wait_until(std::function<bool()> ready, uint64_t timeout_ms) {
  loop_.update_time();
  const uint64_t deadline = loop_.now_ms() + timeout_ms;
  for (;;) {
    if (ready()) co_return true;
    loop_.update_time();
    if (loop_.now_ms() >= deadline) co_return false;
    co_await changed_.wait(deadline - loop_.now_ms());
  }
}

void ScriptedRunHub::handle(const std::shared_ptr<core::HttpExchange>& exchange) {
  const core::HttpRequest& request = exchange->request();
  const std::string& path = request.path;
  const bool get = request.method == "GET";
  if (request.method == "POST" && path == "/api/v1/runs") {
    exchange->respond(json(created_status, created_json));
  } else if (get && path == "/api/v1/runs") {
    exchange->respond(json(200, list_json));
  } else if (starts_with(path, "/api/v1/runs/") && ends_with(path, "/events") && get) {
    stream_run_events(exchange);
  } else if (starts_with(path, "/api/v1/runs/") && ends_with(path, "/cancel")) {
    exchange->respond(json(202, "{}"));
    if (on_cancel) on_cancel();
  } else if (starts_with(path, "/api/v1/runs/") && get) {
    exchange->respond(final_json.empty() ? not_found(path) : json(200, final_json));
  } else if (starts_with(path, "/api/v1/tasks/") && ends_with(path, "/events") && get) {
    stream_task_events(exchange, middle(path, "/api/v1/tasks/", "/events"));
  } else if (starts_with(path, "/api/v1/tasks/") && ends_with(path, "/output") && get) {
    auto output = outputs.find(middle(path, "/api/v1/tasks/", "/output") + "/" +
                               request.query_value("stream"));
    if (output == outputs.end()) {
      exchange->respond(not_found(path));
      return;
    }
    const size_t offset = std::stoull("0" + request.query_value("offset"));
    exchange->respond(json(200, output->second.substr(std::min(offset, output->second.size()))));
  } else if (starts_with(path, "/api/v1/tasks/") && get) {
    auto task = task_json.find(middle(path, "/api/v1/tasks/", ""));
    exchange->respond(task == task_json.end() ? not_found(path) : json(200, task->second));
  } else {
    exchange->respond(not_found(path));
  }
}

void ScriptedRunHub::stream_run_events(const std::shared_ptr<core::HttpExchange>& exchange) {
  const core::HttpRequest& request = exchange->request();
  const std::string last =
      !request.last_event_id.empty() ? request.last_event_id : request.query_value("last_event_id");
  const uint64_t after = last.empty() ? 0 : std::stoull(last);
  const bool with_output = request.query_value("output") != "0";
  exchange->begin_stream(200, "text/event-stream", kStreamHeaders);
  exchange->write(": tether events for the run\n\n");
  const bool drop = !dropped_once_ && drop_after != std::numeric_limits<size_t>::max();
  size_t sent = 0;
  for (const auto& event : events) {
    if (event.id <= after || (!with_output && event.type == "output")) continue;
    if (drop && sent == drop_after) {
      // Half an event, then the connection closes: the CLI must not take it.
      const std::string text = event.text();
      exchange->write(text.substr(0, text.size() / 2));
      dropped_once_ = true;
      exchange->finish();
      return;
    }
    exchange->write(event.text());
    ++sent;
  }
  if (hold_open) {
    open_stream_ = exchange;
    return;
  }
  exchange->write(ScriptedEvent{0, "end", "{}"}.text());
  exchange->finish();
}

void ScriptedRunHub::stream_task_events(const std::shared_ptr<core::HttpExchange>& exchange,
                                        const std::string& task_id) {
  exchange->begin_stream(200, "text/event-stream", kStreamHeaders);
  for (const auto& event : task_events[task_id])
    exchange->write(event.text());
  exchange->write(ScriptedEvent{0, "end", "{}"}.text());
  exchange->finish();
}

}  // namespace tether::test
