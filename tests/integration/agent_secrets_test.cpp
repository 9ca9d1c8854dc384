// Secrets end to end: `tether run --secret` (from the environment and from a
// file) through the real hub to the real agent, which sets them in the
// task's environment and takes them out of its output before anything is
// stored. The values must then be nowhere: not in hub.db (the raw bytes of
// the file and its WAL), not in either daemon's log, not in the outbox file,
// not in any answer of the operator API, not in what the CLI printed.
#include <fstream>
#include <iterator>

#include "agent_world.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/sha256.hpp"

using namespace tether;
using namespace tether::test;

namespace {

constexpr const char* kDbPassword = "Sup3r-S3cret-Value-4242";
constexpr const char* kApiKey = "api-k3y-0123456789abcdef";

std::string file_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// The database file and its write-ahead log, as bytes.
std::string database_bytes(const std::string& path) {
  return file_bytes(path) + file_bytes(path + "-wal");
}

// Where a secret must not be, and what it is.
void check_nowhere(const std::string& where, const std::string& text) {
  INFO(where << " (" << text.size() << " bytes)");
  CHECK(text.find(kDbPassword) == std::string::npos);
  CHECK(text.find(kApiKey) == std::string::npos);
}

core::Co<std::string> get(Operator& op, std::string target) {
  auto reply = co_await op.request("GET", std::move(target));
  REQUIRE(reply.ok());
  REQUIRE(reply->status == 200);
  co_return reply->body;
}

}  // namespace

TEST_CASE("secrets reach the task's environment and are redacted from its output everywhere",
          "[agent][e2e][secrets]") {
  AgentWorldOptions options;
  options.hub_args = {"--log-level", "debug"};
  AgentWorld world(options);
  world.agent.set("log_level", "debug");
  world.run([&]() -> core::Co<void> {
    const std::string key_file = world.dir.write_secret("api.key", kApiKey);  // with a newline
    // Whole; split across two writes 10 ms apart (the first half is flushed
    // output if nothing holds it); on stderr; last, without a newline.
    const std::string script =
        "printf 'whole: %s\\n' \"$DB_PASSWORD\"; "
        "rest=${DB_PASSWORD#??????????}; printf 'split: %s' \"${DB_PASSWORD%\"$rest\"}\"; "
        "sleep 0.01; printf '%s\\n' \"$rest\"; "
        "printf 'err: %s\\n' \"$API_KEY\" >&2; "
        "printf 'end: %s' \"$API_KEY\"";
    const std::vector<std::string> args = {"run",
                                           "--agent",
                                           "edge-1",
                                           "--secret",
                                           "DB_PASSWORD",
                                           "--secret",
                                           "API_KEY=@" + key_file,
                                           "--shell",
                                           "--",
                                           script};
    const std::vector<std::string> environment = {
        "TETHER_HUB_URL=" + world.hub.url(),
        "TETHER_TOKEN_FILE=" + world.dir.write_secret("admin.token", world.admin_token),
        std::string("DB_PASSWORD=") + kDbPassword};
    auto run = co_await run_cli(world.loop, args, environment);
    INFO("stderr: " << run.err);
    CHECK(run.exit_code == 0);
    const std::string expected_out =
        "whole: [secret:DB_PASSWORD]\nsplit: [secret:DB_PASSWORD]\nend: [secret:API_KEY]";
    const std::string expected_err = "err: [secret:API_KEY]\n";
    CHECK(run.out == expected_out);
    CHECK(run.err == expected_err);

    auto op = world.op();
    const std::string list = co_await get(op, "/api/v1/tasks");
    auto tasks = protocol::decode_task_list(list);
    REQUIRE(tasks.ok());
    REQUIRE(tasks->size() == 1);
    const std::string id = tasks->front().task.id;
    const FinalView final_view = co_await world.final_of(id, "succeeded", 20'000);
    CHECK(final_view.verified);
    CHECK(final_view.out.bytes == expected_out.size());
    CHECK(final_view.out.sha256 == protocol::sha256_hex(expected_out));
    CHECK(final_view.err.sha256 == protocol::sha256_hex(expected_err));

    const std::string view = co_await op.task_json(id);
    auto decoded = protocol::decode_task_view(view);
    REQUIRE(decoded.ok());
    CHECK(decoded->task.secret_names == std::vector<std::string>{"API_KEY", "DB_PASSWORD"});
    REQUIRE(decoded->final_report.has_value());
    REQUIRE(decoded->final_report->redactions.has_value());
    CHECK(decoded->final_report->redactions->stdout_count == 3);
    CHECK(decoded->final_report->redactions->stderr_count == 1);
    const std::string stored_out = co_await op.output(id, "stdout");
    const std::string stored_err = co_await op.output(id, "stderr");
    CHECK(stored_out == expected_out);
    CHECK(stored_err == expected_err);
    const std::string events = co_await get(op, "/api/v1/tasks/" + id + "/events?follow=0");
    CHECK_THAT(events, Catch::Contains(R"("redactions":{"stdout":3,"stderr":1})"));
    // The hub's stored final carries the counts too, and the secrets are gone.
    CHECK_THAT(sqlite_query(world.hub_db(), "SELECT final_json FROM tasks"),
               Catch::Contains(R"("redactions":{"stdout":3,"stderr":1})"));
    CHECK(sqlite_query(world.hub_db(), "SELECT count(*) FROM task_secrets") == "0");

    const std::string status_args_id = id;
    const std::vector<std::string> status_args = {"status", status_args_id};
    auto status = co_await run_cli(world.loop, status_args, environment);
    CHECK_THAT(status.out, Catch::Contains("secrets   API_KEY DB_PASSWORD") &&
                               Catch::Contains("redacted  3 in stdout, 1 in stderr"));

    check_nowhere("the CLI's output", run.out + run.err + status.out + status.err);
    check_nowhere("the task list", list);
    check_nowhere("the task view", view);
    check_nowhere("the stored output", stored_out + stored_err);
    check_nowhere("the events", events);
    check_nowhere("the hub's log", world.hub.log());
    check_nowhere("the agent's log", world.agent.log());
    check_nowhere("hub.db and its WAL", database_bytes(world.hub_db()));
    check_nowhere("the outbox and its WAL", database_bytes(world.agent.outbox_path()));
  });
  // After both daemons stopped (checkpointed, closed), once more.
  check_nowhere("hub.db and its WAL, stopped", database_bytes(world.hub_db()));
  check_nowhere("the outbox and its WAL, stopped", database_bytes(world.agent.outbox_path()));
  check_nowhere("the hub's log, stopped", world.hub.log());
  check_nowhere("the agent's log, stopped", world.agent.log());
}
