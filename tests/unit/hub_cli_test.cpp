// Pieces of the hub and CLI that need no process: the SSE parser, the task
// state table, and the small parsers for URLs, listen addresses and tokens.
#include <catch2/catch.hpp>

#include "cli/sse_parser.hpp"
#include "core/listen_address.hpp"
#include "core/url.hpp"
#include "hub/hub.hpp"
#include "hub/task_state.hpp"
#include "hub/tokens.hpp"

using namespace tether;

namespace {

std::vector<cli::SseEvent> parse(const std::vector<std::string>& pieces) {
  std::vector<cli::SseEvent> events;
  cli::SseParser parser([&](const cli::SseEvent& event) { events.push_back(event); });
  for (const auto& piece : pieces)
    REQUIRE(parser.feed(piece).ok());
  return events;
}

}  // namespace

TEST_CASE("SseParser handles every line ending, multi-line data and comments", "[sse]") {
  auto events = parse({": hello\n\nid: 1\nevent: output\ndata: {\"a\":1}\n\n",
                       "id: 2\r\ndata: line one\r\ndata: line two\r\n\r\n", "data:no space\r\r",
                       "event: end\ndata: {}\n\n"});
  REQUIRE(events.size() == 4);
  CHECK(events[0].id == "1");
  CHECK(events[0].type == "output");
  CHECK(events[0].data == "{\"a\":1}");
  CHECK(events[1].data == "line one\nline two");
  CHECK(events[1].type == "message");
  CHECK(events[2].data == "no space");
  CHECK(events[3].type == "end");
}

TEST_CASE("SseParser reassembles events split at any byte", "[sse]") {
  const std::string stream =
      "id: 41\nevent: status\ndata: {\"state\":\"running\"}\r\n\r\nid: 42\ndata: x\n\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    auto events = parse({stream.substr(0, cut), stream.substr(cut)});
    REQUIRE(events.size() == 2);
    CHECK(events[0].data == "{\"state\":\"running\"}");
    CHECK(events[1].id == "42");
  }
  cli::SseParser parser([](const cli::SseEvent&) {});
  REQUIRE(parser.feed("id: 7\ndata: a\n\n: keepalive\n\n").ok());
  CHECK(parser.last_event_id() == "7");  // what to resume after
}

TEST_CASE("SseParser refuses an endless line instead of buffering it", "[sse]") {
  cli::SseParser parser([](const cli::SseEvent&) {}, 1024);
  auto result = parser.feed("data: " + std::string(2000, 'x'));
  REQUIRE_FALSE(result.ok());
  CHECK_THAT(result.error().message, Catch::Contains("longer than 1024"));
  CHECK_FALSE(parser.feed("\n\n").ok());  // stays failed
}

TEST_CASE("task state changes follow the documented table only", "[hub]") {
  using hub::is_legal_transition;
  using hub::TaskState;
  CHECK(is_legal_transition(TaskState::kQueued, TaskState::kDispatched));
  CHECK(is_legal_transition(TaskState::kQueued, TaskState::kCancelled));
  CHECK(is_legal_transition(TaskState::kQueued, TaskState::kFailed));  // secrets unreadable
  CHECK_FALSE(is_legal_transition(TaskState::kQueued, TaskState::kRunning));
  CHECK_FALSE(is_legal_transition(TaskState::kQueued, TaskState::kSucceeded));
  CHECK(is_legal_transition(TaskState::kDispatched, TaskState::kRunning));
  CHECK(is_legal_transition(TaskState::kDispatched, TaskState::kRejected));
  CHECK(is_legal_transition(TaskState::kDispatched, TaskState::kQueued));
  CHECK(is_legal_transition(TaskState::kRunning, TaskState::kTimedOut));
  CHECK(is_legal_transition(TaskState::kRunning, TaskState::kLost));
  CHECK_FALSE(is_legal_transition(TaskState::kRunning, TaskState::kRejected));
  CHECK_FALSE(is_legal_transition(TaskState::kRunning, TaskState::kDispatched));
  for (auto terminal : {TaskState::kSucceeded, TaskState::kFailed, TaskState::kTimedOut,
                        TaskState::kCancelled, TaskState::kLost, TaskState::kRejected}) {
    CHECK(hub::is_terminal(terminal));
    for (auto to : {TaskState::kQueued, TaskState::kRunning, TaskState::kSucceeded}) {
      CHECK_FALSE(is_legal_transition(terminal, to));
    }
    CHECK(hub::parse_task_state(hub::to_string(terminal)) == terminal);
  }
}

TEST_CASE("URLs, listen addresses and bearer tokens parse strictly", "[hub]") {
  auto url = core::parse_url("wss://[::1]:8443/api?x=1");
  REQUIRE(url.ok());
  CHECK(url->host == "::1");
  CHECK(url->port == 8443);
  CHECK(url->path == "/api?x=1");
  CHECK(url->uses_tls());
  CHECK(url->origin() == "https://[::1]:8443");
  CHECK(core::parse_url("https://hub.example")->port == 443);
  CHECK_FALSE(core::parse_url("ftp://x").ok());
  CHECK_FALSE(core::parse_url("http://user:pw@x").ok());
  CHECK_FALSE(core::parse_url("http://x:99999").ok());
  CHECK(core::url_encode("a b/c") == "a%20b%2Fc");

  auto listen = core::parse_listen_address("127.0.0.1:7070", "--listen");
  REQUIRE(listen.ok());
  CHECK(listen->second == 7070);
  CHECK(core::parse_listen_address("[::]:0", "--listen")->first == "::");
  CHECK_FALSE(core::parse_listen_address("7070", "--listen").ok());
  CHECK_FALSE(core::parse_listen_address("host:port", "--listen").ok());

  CHECK(hub::bearer_token("Bearer abc") == "abc");
  CHECK(hub::bearer_token("bearer abc ") == "abc");
  CHECK(hub::bearer_token("Basic abc").empty());
  CHECK(hub::bearer_token("Bearer ").empty());
  const auto token = hub::generate_token("tta_");
  CHECK(token.size() == 4 + 43);
  CHECK(token.rfind("tta_", 0) == 0);
  CHECK(hub::generate_token("tta_") != token);
  CHECK(hub::digests_equal(hub::token_digest(token), hub::token_digest(token)));
  CHECK_FALSE(hub::digests_equal(hub::token_digest(token), hub::token_digest(token + "x")));
}
