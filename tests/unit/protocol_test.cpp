// UTF-8 helpers, base64, SHA-256, task decoding and report JSON.
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <optional>
#include <random>

#include "protocol/base64.hpp"
#include "protocol/duration_text.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/labels.hpp"
#include "protocol/operator_api.hpp"
#include "protocol/report_json.hpp"
#include "protocol/sha256.hpp"
#include "protocol/task_spec.hpp"
#include "protocol/utf8.hpp"
#include "protocol/wire_integer.hpp"

using namespace tether;
using namespace tether::protocol;

TEST_CASE("is_valid_utf8 accepts well-formed text and rejects the rest", "[protocol]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii, longer than eight bytes\n"));
  CHECK(is_valid_utf8("caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9D\x84\x9E"));
  CHECK(is_valid_utf8(std::string("nul\0inside", 10)));
  CHECK_FALSE(is_valid_utf8("\xC3"));              // truncated
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xFF"));
  CHECK_FALSE(is_valid_utf8("ascii then \x80 continuation"));
}

TEST_CASE("incomplete_utf8_tail holds back only a sequence that can still complete", "[protocol]") {
  CHECK(incomplete_utf8_tail("") == 0);
  CHECK(incomplete_utf8_tail("abc") == 0);
  CHECK(incomplete_utf8_tail("ab\xC3") == 1);
  CHECK(incomplete_utf8_tail("ab\xC3\xA9") == 0);
  CHECK(incomplete_utf8_tail("ab\xE2\x9C") == 2);
  CHECK(incomplete_utf8_tail("ab\xF0\x9D\x84") == 3);
  CHECK(incomplete_utf8_tail("ab\xF0\x9D\x84\x9E") == 0);
  CHECK(incomplete_utf8_tail("ab\xFF") == 0);      // never valid: not held
  CHECK(incomplete_utf8_tail("ab\xE0\x80") == 0);  // overlong prefix: not held
  CHECK(incomplete_utf8_tail("\x80\x80\x80") == 0);
}

TEST_CASE("base64 round-trips every byte value and rejects bad input", "[protocol]") {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all.push_back(static_cast<char>(i));
  for (size_t length = 0; length <= all.size(); length += 37) {
    const std::string bytes = all.substr(0, length);
    auto decoded = base64_decode(base64_encode(bytes));
    REQUIRE(decoded.ok());
    CHECK(*decoded == bytes);
  }
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK_FALSE(base64_decode("Zm9").ok());
  CHECK_FALSE(base64_decode("Zm9v*mFy").ok());
  CHECK_FALSE(base64_decode("Zm=vYmFy").ok());
  CHECK(base64_decode("Zm9v!mFy").error().message.find("offset 4") != std::string::npos);
}

TEST_CASE("Sha256 matches known digests, incrementally", "[protocol]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 running;
  running.update("a");
  running.update("bc");
  CHECK(running.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  running.update("d");  // hex_digest left the state usable
  CHECK(running.hex_digest() == sha256_hex("abcd"));
  // A saved state continues where it left off.
  auto restored = Sha256::restore(running.state());
  REQUIRE(restored.ok());
  restored->update(std::string(100000, 'e'));
  CHECK(restored->hex_digest() == sha256_hex("abcd" + std::string(100000, 'e')));
  CHECK_FALSE(Sha256::restore("short").ok());
}

TEST_CASE("decode_task reads a full task", "[protocol]") {
  auto task = decode_task(R"({"task_id":"t1","attempt_id":"t1-a1",
    "command":{"argv":["echo","hi"]},"env":{"A":"1"},"cwd":"/tmp",
    "timeout_s":30,"target":"deploy","future_field":true})");
  REQUIRE(task.ok());
  CHECK(task->task_id == "t1");
  CHECK(task->attempt_id == "t1-a1");
  CHECK(task->argv == std::vector<std::string>{"echo", "hi"});
  CHECK(task->env.at("A") == "1");
  CHECK(task->cwd == "/tmp");
  CHECK(task->timeout_s == 30);
  CHECK(task->target == "deploy");
  auto again = decode_task(encode_task(*task));
  REQUIRE(again.ok());
  CHECK(again->argv == task->argv);
  CHECK(again->target == "deploy");

  auto shell = decode_task(R"({"task_id":"t","attempt_id":"a","command":{"shell":"echo $HOME"}})");
  REQUIRE(shell.ok());
  CHECK(shell->command_line() == std::vector<std::string>{"/bin/sh", "-c", "echo $HOME"});
}

TEST_CASE("decode_task rejects malformed tasks naming the field", "[protocol]") {
  struct Case {
    const char* json;
    const char* expected;
  };
  const Case cases[] = {
      {"not json", "invalid JSON"},
      {"[1,2]", "expected a JSON object"},
      {R"({"attempt_id":"a","command":{"argv":["x"]}})", "task.task_id: is required"},
      {R"({"task_id":5,"attempt_id":"a","command":{"argv":["x"]}})",
       "task.task_id: expected a string"},
      {R"({"task_id":"t/x","attempt_id":"a","command":{"argv":["x"]}})", "task.task_id: must be"},
      {R"({"task_id":"t","attempt_id":"a"})", "task.command: is required"},
      {R"({"task_id":"t","attempt_id":"a","command":{}})", "task.command: needs exactly one"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"],"shell":"y"}})",
       "task.command: needs exactly one"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":[]}})",
       "task.command.argv: must not be empty"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x",3]}})",
       "task.command.argv[1]: expected a string"},
      {R"({"task_id":"t","attempt_id":"a","command":{"shell":""}})",
       "task.command.shell: must not be empty"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},"env":{"1X":"v"}})",
       "task.env: '1X' is not a valid"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},"env":{"X":1}})",
       "task.env.X: expected a string"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},"cwd":"relative"})",
       "task.cwd: must be an absolute path"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},"timeout_s":-1})",
       "task.timeout_s: expected a non-negative integer"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},"timeout_s":"10"})",
       "task.timeout_s: expected a non-negative integer, got string"},
      {R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},"timeout_s":99999999})",
       "task.timeout_s: at most"},
      {"{\"task_id\":\"t\",\"attempt_id\":\"a\",\"command\":{\"argv\":[\"x\\u0000y\"]}}",
       "task.command.argv[0]: contains a NUL"},
      {"{\"task_id\":\"t\xff\",\"attempt_id\":\"a\",\"command\":{\"argv\":[\"x\"]}}",
       "invalid JSON"},
  };
  for (const auto& c : cases) {
    INFO(c.json);
    auto task = decode_task(c.json);
    REQUIRE_FALSE(task.ok());
    CHECK_THAT(task.error().message, Catch::Contains(c.expected));
  }
}

// Against a reference written the slow way, over random texts: digits of
// every length (around 2^63 and 2^64 in particular), signs, spaces, bytes.
TEST_CASE("parse_wire_integer takes exactly the decimal integers 0..2^63-1", "[protocol]") {
  auto reference = [](const std::string& text) -> std::optional<uint64_t> {
    if (text.empty() || text.size() > 19) return std::nullopt;
    uint64_t value = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return std::nullopt;
      const uint64_t digit = static_cast<uint64_t>(c - '0');
      if (value > (protocol::kMaxWireInteger - digit) / 10) return std::nullopt;
      value = value * 10 + digit;
    }
    return value;
  };
  std::mt19937_64 random(20261130);
  static constexpr char kAlphabet[] = "0123456789+- .e\0\xff";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
  for (int i = 0; i < 200000; ++i) {
    std::string text;
    const int kind = static_cast<int>(random() % 4);
    const size_t length = random() % 23;
    for (size_t k = 0; k < length; ++k) {
      text +=
          kind == 0 ? alphabet[random() % alphabet.size()] : static_cast<char>('0' + random() % 10);
    }
    if (kind == 2) text = std::to_string(protocol::kMaxWireInteger - random() % 1000 + 500);
    if (kind == 3) text = std::to_string(random());  // the whole uint64 range
    INFO(text);
    REQUIRE(protocol::parse_wire_integer(text) == reference(text));
  }
  CHECK(protocol::parse_wire_integer("9223372036854775807") == protocol::kMaxWireInteger);
  CHECK_FALSE(protocol::parse_wire_integer("9223372036854775808"));
  CHECK_FALSE(protocol::parse_wire_integer("18446744073709551615"));
  CHECK(protocol::parse_wire_integer("0") == 0u);
  CHECK(protocol::parse_wire_integer("60", 60) == 60u);
  CHECK_FALSE(protocol::parse_wire_integer("61", 60));
}

TEST_CASE("labels: key=value lists parse strictly and print back sorted", "[protocol]") {
  auto labels = protocol::parse_labels("role=web, region=eu,canary=");
  REQUIRE(labels.ok());
  CHECK(labels->size() == 3);
  CHECK(labels->at("canary").empty());
  CHECK(protocol::format_labels(*labels) == "canary=,region=eu,role=web");
  CHECK(protocol::parse_labels(protocol::format_labels(*labels)).value() == *labels);
  CHECK(protocol::parse_labels("")->empty());
  for (const char* bad : {"role", "=web", "role=web,role=db", "-x=1", "r\xc3\xb4le=web",
                          "role=we b", "k=v,,", "role=web;rm"}) {
    INFO(bad);
    auto parsed = protocol::parse_labels(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == "invalid_labels");
    CHECK_THAT(parsed.error().message, Catch::StartsWith("label '"));
  }
  CHECK_FALSE(protocol::parse_labels(std::string(64, 'k') + "=v").ok());
  CHECK(protocol::parse_labels(std::string(63, 'k') + "=" + std::string(63, 'v')).ok());
}

TEST_CASE("a task answer written by the hub reads back; a hostile one is an error naming the field",
          "[protocol]") {
  protocol::TaskView view;
  view.id = "t-1";
  view.agent = "edge-1";
  view.state = "succeeded";
  view.command_json = R"({"argv":["true"]})";
  view.env_json = "{}";
  view.output_verified = true;
  protocol::FinalReport report;
  report.status = protocol::AttemptStatus::kSucceeded;
  report.exit_code = 0;
  report.stdout_summary.bytes = 6;
  report.stdout_summary.sha256 = protocol::sha256_hex("hello\n");
  report.stderr_summary.sha256 = protocol::sha256_hex("");
  view.final_json = protocol::encode_final_report(report);
  view.attempts.push_back({"t-1-a1", 1, "finished", "a", "b", "c", ""});
  protocol::JsonWriter json;
  protocol::write_task_view(json, view);
  const std::string body = json.str();
  auto decoded = protocol::decode_task_view(body);
  REQUIRE(decoded.ok());
  CHECK(decoded->task.id == "t-1");
  CHECK(decoded->task.output_verified == std::optional<bool>(true));
  REQUIRE(decoded->final_report.has_value());
  CHECK(decoded->final_report->stdout_summary.bytes == 6u);
  CHECK(decoded->final_report->exit_code == std::optional<int64_t>(0));

  auto hostile = protocol::decode_task_view(
      R"({"id":"t-1","agent":"a","state":"succeeded","final":{"status":"succeeded","stdout":7}})");
  REQUIRE_FALSE(hostile.ok());
  CHECK_THAT(hostile.error().message, Catch::Contains("task.final"));
  auto wrong_type = protocol::decode_task_view(R"({"id":1,"agent":"a","state":"x"})");
  REQUIRE_FALSE(wrong_type.ok());
  CHECK_THAT(wrong_type.error().message, Catch::Contains("task.id"));
}

TEST_CASE("the agents and tasks lists read back; a hostile list is an error, not a crash",
          "[protocol]") {
  protocol::AgentView agent;
  agent.name = "edge-1";
  agent.connected = true;
  agent.labels = {{"role", "web"}};
  agent.running_attempts = 2;
  agent.outbox_rows = 5;
  protocol::JsonWriter json;
  json.begin_object();
  json.key("agents");
  json.begin_array();
  protocol::write_agent_view(json, agent);
  json.end_array();
  json.end_object();
  const std::string body = json.str();
  auto agents = protocol::decode_agent_list(body);
  REQUIRE(agents.ok());
  REQUIRE(agents->size() == 1);
  CHECK(agents->at(0).name == "edge-1");
  CHECK(agents->at(0).connected);
  CHECK(agents->at(0).labels.at("role") == "web");
  CHECK(agents->at(0).running_attempts == 2u);
  CHECK(agents->at(0).outbox_rows == std::optional<uint64_t>(5));
  CHECK_FALSE(agents->at(0).outbox_bytes.has_value());

  for (const char* hostile : {R"({"agents":1})", R"({"agents":[1]})", R"({"agents":[{"name":7}]})",
                              R"({"agents":[{"name":"a","outbox":{"rows":"many"}}]})",
                              R"({"agents":[{"name":"a","labels":{"k":1}}]})"}) {
    CAPTURE(hostile);
    auto decoded = protocol::decode_agent_list(hostile);
    CHECK_FALSE(decoded.ok());
  }
  auto tasks = protocol::decode_task_list(
      R"({"tasks":[{"id":"t-1","agent":"a","state":"queued","command":{"argv":["echo","hi"]}}]})");
  REQUIRE(tasks.ok());
  REQUIRE(tasks->size() == 1);
  const std::vector<std::string> argv = {"echo", "hi"};
  CHECK(tasks->at(0).command.argv == argv);
  auto hostile_tasks = protocol::decode_task_list(R"({"tasks":[{"id":"t-1","agent":"a",)"
                                                  R"("state":"queued","command":{"argv":[3]}}]})");
  REQUIRE_FALSE(hostile_tasks.ok());
  CHECK_THAT(hostile_tasks.error().message, Catch::Contains("command.argv[0]"));
}

TEST_CASE("secrets go to the agent and come in a submit with their values; a task view has names",
          "[protocol][secrets]") {
  auto task = decode_task(R"({"task_id":"t1","attempt_id":"t1-a1","command":{"argv":["env"]},
    "env":{"STAGE":"prod"},"secrets":{"DB_PASSWORD":"s3cr3t","API_KEY":"k-123"}})");
  REQUIRE(task.ok());
  CHECK(task->secrets ==
        std::map<std::string, std::string>{{"API_KEY", "k-123"}, {"DB_PASSWORD", "s3cr3t"}});
  CHECK(task->env == std::map<std::string, std::string>{{"STAGE", "prod"}});
  const std::string encoded = encode_task(*task, 60);
  CHECK_THAT(encoded, Catch::Contains(R"("secrets":{"API_KEY":"k-123","DB_PASSWORD":"s3cr3t"})"));
  auto again = decode_task(encoded);
  REQUIRE(again.ok());
  CHECK(again->secrets == task->secrets);
  // A task without secrets carries no member for them.
  task->secrets.clear();
  CHECK_THAT(encode_task(*task), !Catch::Contains("secrets"));

  SubmitRequest request;
  request.agent = "edge-1";
  request.spec.argv = {"true"};
  request.spec.secrets = {{"TOKEN", "abc-def"}};
  auto submitted = decode_submit(encode_submit(request));
  REQUIRE(submitted.ok());
  CHECK(submitted->spec.secrets == request.spec.secrets);

  TaskView view;
  view.id = "t-1";
  view.agent = "edge-1";
  view.state = "queued";
  view.command_json = R"({"argv":["true"]})";
  view.env_json = "{}";
  view.secret_names = {"API_KEY", "DB_PASSWORD"};
  JsonWriter json;
  write_task_view(json, view);
  CHECK_THAT(json.str(), Catch::Contains(R"("secrets":["API_KEY","DB_PASSWORD"])"));
  auto decoded = decode_task_view(json.str());
  REQUIRE(decoded.ok());
  CHECK(decoded->task.secret_names == view.secret_names);
  auto bad_names = decode_task_view(R"({"id":"t","agent":"a","state":"queued","secrets":[1]})");
  REQUIRE_FALSE(bad_names.ok());
  CHECK_THAT(bad_names.error().message, Catch::Contains("task.secrets"));
}

TEST_CASE("bad secrets are refused naming the field, never quoting a value",
          "[protocol][secrets]") {
  const std::string head = R"({"task_id":"t","attempt_id":"a","command":{"argv":["x"]},)";
  struct Case {
    std::string json;
    const char* expected;
  };
  const Case cases[] = {
      {head + R"("secrets":{"1X":"hidden-value"}})", "task.secrets: '1X' is not a valid"},
      {head + R"("secrets":{"X":7}})", "task.secrets.X: expected a string"},
      {head + R"("secrets":["X"]})", "task.secrets: expected an object"},
      {head + R"("env":{"PW":"a"},"secrets":{"PW":"hidden-value"}})",
       "task.secrets.PW: also set in env"},
      {head + "\"secrets\":{\"X\":\"hidden\\u0000value\"}}", "task.secrets.X: contains a NUL"},
      {head + R"("secrets":{"X":")" + std::string(kMaxSecretBytes + 1, 'h') + R"("}})",
       "task.secrets.X: longer than 16384 bytes"},
  };
  for (const auto& c : cases) {
    INFO(c.json.substr(0, 200));
    auto task = decode_task(c.json);
    REQUIRE_FALSE(task.ok());
    CHECK_THAT(task.error().message, Catch::Contains(c.expected));
    CHECK_THAT(task.error().message, !Catch::Contains("hidden"));
  }
  TaskSpec many;
  many.task_id = "t";
  many.attempt_id = "a";
  many.argv = {"x"};
  for (size_t i = 0; i <= kMaxSecretEntries; ++i)
    many.secrets["S" + std::to_string(i)] = "v";
  auto too_many = validate_task(many);
  REQUIRE_FALSE(too_many.ok());
  CHECK_THAT(too_many.error().message, Catch::Contains("task.secrets: more than 64 entries"));
  many.secrets.clear();
  for (size_t i = 0; i < 5; ++i)
    many.secrets["S" + std::to_string(i)] = std::string(kMaxSecretBytes, 'v');
  auto too_large = validate_task(many);
  REQUIRE_FALSE(too_large.ok());
  CHECK_THAT(too_large.error().message, Catch::Contains("bytes of values together"));
}

TEST_CASE("a final's redaction counts round-trip, are absent without secrets, and are checked",
          "[protocol][secrets]") {
  FinalReport report;
  report.status = AttemptStatus::kSucceeded;
  report.exit_code = 0;
  report.stdout_summary.sha256 = sha256_hex("");
  report.stderr_summary.sha256 = sha256_hex("");
  CHECK_THAT(encode_final_report(report), !Catch::Contains("redactions"));
  auto plain = decode_final_report(encode_final_report(report));
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->redactions.has_value());

  report.redactions = RedactionCounts{3, 1};
  const std::string json = encode_final_report(report);
  CHECK_THAT(json, Catch::Contains(R"("redactions":{"stdout":3,"stderr":1})"));
  auto decoded = decode_final_report(json);
  REQUIRE(decoded.ok());
  REQUIRE(decoded->redactions.has_value());
  CHECK(*decoded->redactions == RedactionCounts{3, 1});
  // In the final event too.
  CHECK_THAT(final_event_json("t-1-a1", report, true, ""),
             Catch::Contains(R"("redactions":{"stdout":3,"stderr":1})"));

  const std::string base = R"({"status":"succeeded","stdout":{"bytes":0,"sha256":")" +
                           sha256_hex("") + R"("},"stderr":{"bytes":0,"sha256":")" +
                           sha256_hex("") + R"("},)";
  auto missing = decode_final_report(base + R"("redactions":{"stdout":1}})");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("final.redactions.stderr: is required"));
  auto negative = decode_final_report(base + R"("redactions":{"stdout":-1,"stderr":0}})");
  REQUIRE_FALSE(negative.ok());
  CHECK_THAT(negative.error().message, Catch::Contains("final.redactions.stdout"));
}

TEST_CASE("durations as operators type them: a count and s, m, h or d", "[protocol]") {
  CHECK(protocol::parse_duration_s("90s") == 90);
  CHECK(protocol::parse_duration_s("30m") == 1800);
  CHECK(protocol::parse_duration_s("24h") == 86400);
  CHECK(protocol::parse_duration_s("7d") == 604800);
  for (const char* bad : {"", "s", "0m", "-5m", "5", "5 m", "5w", "1.5h", "100000001s", "m5"}) {
    INFO(bad);
    CHECK_FALSE(protocol::parse_duration_s(bad).has_value());
  }
}

TEST_CASE("a final carries how its attempt was isolated, and a bad one is refused", "[protocol]") {
  protocol::FinalReport report;
  report.status = protocol::AttemptStatus::kSucceeded;
  report.exit_code = 0;
  report.isolation = protocol::AttemptIsolation{"tether-task", 998, "cgroup"};
  report.stdout_summary.sha256 = protocol::sha256_hex("");
  report.stderr_summary.sha256 = protocol::sha256_hex("");
  const std::string json = protocol::encode_final_report(report);
  CHECK_THAT(json, Catch::Contains(
                       R"("isolation":{"user":"tether-task","uid":998,"containment":"cgroup"})"));
  auto decoded = protocol::decode_final_report(json);
  INFO((decoded ? std::string() : decoded.error().message));
  REQUIRE(decoded);
  REQUIRE(decoded->isolation);
  CHECK(decoded->isolation->uid == 998);
  CHECK(decoded->isolation->containment == "cgroup");
  std::string bad = json;
  bad.replace(bad.find("\"cgroup\""), 8, "\"docker\"");
  auto refused = protocol::decode_final_report(bad);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message, Catch::Contains("containment"));
}
