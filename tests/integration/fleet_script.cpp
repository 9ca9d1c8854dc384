#include "fleet_script.hpp"

#include <catch2/catch.hpp>
#include <tuple>

#include "core/run.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/report_json.hpp"
#include "protocol/run_api.hpp"

namespace tether::test {

using protocol::StreamName;

namespace {

std::string at_ms(int64_t ms) {
  char text[80];
  std::snprintf(text, sizeof text, "2026-11-22T05:00:%02lld.%03lldZ",
                static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
  return text;
}

}  // namespace

std::vector<std::string> FleetWorld::environment() const {
  return {"TETHER_HUB_URL=" + hub->url(), "TETHER_TOKEN_FILE=" + token_file};
}

void FleetWorld::run(const std::function<core::Co<void>()>& body) {
  auto scenario = [&]() -> core::Co<void> {
    hub = std::make_unique<ScriptedRunHub>(loop);
    std::exception_ptr failure;
    try {
      co_await body();
    } catch (...) {
      failure = std::current_exception();
    }
    hub.reset();
    if (failure) std::rethrow_exception(failure);
  };
  core::run_to_completion(loop, scenario());
}

core::Co<CliRun> FleetWorld::cli(std::vector<std::string> args) {
  co_return co_await run_cli(loop, std::move(args), environment());
}

void EventScript::add(std::string type, std::string data) {
  events.push_back({100 + events.size(), std::move(type), std::move(data)});
}

void EventScript::status(const std::string& task, const std::string& state) {
  add("status", R"({"task_id":")" + task + R"(","state":")" + state + R"(","attempt_id":")" + task +
                    R"(-a1","at":"2026-11-22T05:00:00.000Z"})");
}

void EventScript::output(const std::string& task, StreamName stream, const std::string& bytes) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("attempt_id", task + "-a1");
  uint64_t& offset = offsets[{task, stream}];
  protocol::write_output_fields(json, {stream, ++seqs[{task, stream}], offset, bytes});
  offset += bytes.size();
  json.end_object();
  add("output", json.str());
}

void EventScript::final(const std::string& task, protocol::AttemptStatus status,
                        std::optional<int64_t> exit, const std::string& out,
                        const std::string& err) {
  protocol::JsonWriter json;
  json.begin_object();
  json.field("attempt_id", task + "-a1");
  protocol::write_final_fields(json, final_for(status, exit, out, err));
  json.end_object();
  add("final", json.str());
}

void EventScript::run(const std::string& state, const std::string& note) {
  add("run", R"({"run_id":"r-1","state":")" + state + R"(","note":")" + note +
                 R"(","at":"2026-11-22T05:00:09.000Z"})");
}

Host::Host(std::string agent, std::string task, std::string state, std::optional<int64_t> exit_code,
           std::string out, std::string err, int64_t duration_ms, std::string note)
    : agent(std::move(agent)),
      task(std::move(task)),
      state(std::move(state)),
      exit_code(exit_code),
      out(std::move(out)),
      err(std::move(err)),
      duration_ms(duration_ms),
      note(std::move(note)) {}

// The run's view; `ended` adds exit codes, bytes, times and notes.
std::string view_json(const std::vector<Host>& hosts, const std::string& state, bool ended) {
  protocol::RunView run;
  run.id = "r-1";
  run.state = state;
  run.selector = "role=web";
  run.command_json = R"({"argv":["deploy"]})";
  run.max_concurrency = 2;
  run.created_at = at_ms(0);
  for (const auto& host : hosts) {
    protocol::RunTaskView task;
    task.agent = host.agent;
    task.task_id = host.task;
    task.state = ended ? host.state : "queued";
    ++run.counts[task.state];
    if (ended) {
      task.exit_code = host.exit_code;
      task.stdout_bytes = host.out.size();
      task.stderr_bytes = host.err.size();
      if (host.duration_ms) {
        task.started_at = at_ms(1000);
        task.finished_at = at_ms(1000 + host.duration_ms);
      }
      task.note = host.note;
    }
    run.tasks.push_back(task);
  }
  protocol::JsonWriter json;
  protocol::write_run_view(json, run);
  return json.str();
}

// Every host's output cut in pieces of 3, 7, 1 and 11 bytes, interleaved
// round-robin over hosts and streams, then each host's final and status.
EventScript script_of(const std::vector<Host>& hosts, const std::string& run_state) {
  EventScript script;
  script.run("running");
  for (const auto& host : hosts)
    if (!host.out.empty() || !host.err.empty()) script.status(host.task, "running");
  std::vector<std::tuple<std::string, StreamName, std::string>> rest;
  for (const auto& host : hosts) {
    rest.emplace_back(host.task, StreamName::kStdout, host.out);
    rest.emplace_back(host.task, StreamName::kStderr, host.err);
  }
  const size_t sizes[] = {3, 7, 1, 11};
  for (size_t round = 0, left = 1; left; ++round) {
    left = 0;
    for (auto& [task, stream, bytes] : rest) {
      if (bytes.empty()) continue;
      const size_t size = std::min(bytes.size(), sizes[round % 4]);
      script.output(task, stream, bytes.substr(0, size));
      bytes.erase(0, size);
      left += bytes.size();
    }
  }
  for (const auto& host : hosts) {
    if (host.state == "succeeded" || host.state == "failed") {
      script.final(host.task,
                   host.state == "succeeded" ? protocol::AttemptStatus::kSucceeded
                                             : protocol::AttemptStatus::kFailed,
                   host.exit_code, host.out, host.err);
    }
    script.status(host.task, host.state);
  }
  script.run(run_state);
  return script;
}

void set_up(ScriptedRunHub& hub, const std::vector<Host>& hosts, const std::string& run_state) {
  hub.created_json = view_json(hosts, "running", false);
  hub.final_json = view_json(hosts, run_state, true);
  hub.events = script_of(hosts, run_state).events;
  for (const auto& host : hosts) {
    hub.outputs[host.task + "/stdout"] = host.out;
    hub.outputs[host.task + "/stderr"] = host.err;
  }
}

}  // namespace tether::test
