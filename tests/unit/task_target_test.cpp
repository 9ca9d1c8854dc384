// Hierarchical targets (protocol/task_target.hpp, docs/protocol.md 3): which
// targets are valid, which pairs conflict, and hub::HeldTargets, the sorted
// form the hub's dispatch asks, against the pairwise rule.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "hub/held_targets.hpp"
#include "protocol/task_spec.hpp"
#include "protocol/task_target.hpp"

using namespace tether;
using protocol::targets_conflict;

TEST_CASE("target validity: segments separated by single '/', at most 256 bytes, no NUL",
          "[targets]") {
  struct Row {
    std::string target;
    bool valid;
  };
  const std::vector<Row> rows = {
      {"", true},  // no exclusivity
      {"app", true},
      {"deploy/web", true},
      {"app/web/x", true},
      {"a.b-c_d:e/f g", true},  // any bytes but '/' and NUL within a segment
      {"%/_", true},
      {std::string(256, 'a'), true},
      {std::string(128, 'a') + "/" + std::string(127, 'b'), true},
      {std::string(257, 'a'), false},
      {"/app", false},
      {"app/", false},
      {"app//web", false},
      {"/", false},
      {"//", false},
      {std::string("app\0web", 7), false},
  };
  for (const auto& row : rows) {
    INFO("target '" << row.target << "'");
    CHECK(protocol::is_valid_target(row.target) == row.valid);
    CHECK(protocol::target_problem(row.target).empty() == row.valid);
  }
  CHECK_THAT(protocol::target_problem("app//web"), Catch::Contains("empty segment"));
  CHECK_THAT(protocol::target_problem(std::string(257, 'a')), Catch::Contains("256 bytes"));
}

TEST_CASE("validate_task refuses an invalid target naming task.target; stored forms stay valid",
          "[targets]") {
  protocol::TaskSpec task;
  task.task_id = "t-1";
  task.attempt_id = "t-1-a1";
  task.argv = {"true"};
  for (const char* valid : {"", "deploy", "deploy/web", "app/web/x"}) {
    task.target = valid;
    INFO(valid);
    CHECK(protocol::validate_task(task).ok());
  }
  for (const char* invalid : {"/deploy", "deploy/", "deploy//web"}) {
    task.target = invalid;
    auto refused = protocol::validate_task(task);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "invalid_field");
    CHECK_THAT(refused.error().message, Catch::StartsWith("task.target: "));
  }
  auto decoded = protocol::decode_task(
      R"({"task_id":"t-1","attempt_id":"t-1-a1","command":{"argv":["true"]},"target":"app//web"})");
  REQUIRE_FALSE(decoded.ok());
  CHECK_THAT(decoded.error().message, Catch::StartsWith("task.target: "));
}

TEST_CASE("targets conflict when equal or one is an ancestor at a segment boundary", "[targets]") {
  struct Pair {
    const char* a;
    const char* b;
    bool conflict;
  };
  const std::vector<Pair> pairs = {
      {"app", "app", true},
      {"app", "app/web", true},
      {"app", "app/web/x", true},
      {"app/web", "app/web/x", true},
      {"app/web", "app/web", true},
      {"app/web", "app/db", false},
      {"app/web", "app/webx", false},
      {"app", "application", false},
      {"app", "ap", false},
      {"app/web", "app", true},
      {"app/web/x", "app/db/x", false},
      {"web", "app/web", false},  // a suffix is not an ancestor
      {"a", "b", false},
      {"", "", false},  // the empty target holds nothing
      {"", "app", false},
      {"app", "", false},
      {"%", "%/x", true},  // bytes as they are: no wildcards
      {"_", "a/x", false},
      {"App", "app", false},  // no case folding
  };
  for (const auto& pair : pairs) {
    INFO("'" << pair.a << "' and '" << pair.b << "'");
    CHECK(targets_conflict(pair.a, pair.b) == pair.conflict);
    CHECK(targets_conflict(pair.b, pair.a) == pair.conflict);
  }
}

TEST_CASE("ancestors and the descendant prefix of a target", "[targets]") {
  using Views = std::vector<std::string_view>;
  CHECK(protocol::target_ancestors("a/b/c") == Views{"a", "a/b"});
  CHECK(protocol::target_ancestors("app") == Views{});
  CHECK(protocol::target_ancestors("") == Views{});
  CHECK(protocol::descendant_prefix("a/b") == "a/b/");
}

namespace {

// A valid target of 1 to 3 segments from a small alphabet, so that random
// pairs often share prefixes ("a" and "ab", "a/b" and "a/bb").
std::string random_target(std::mt19937& random) {
  static const std::vector<std::string> segments = {"a", "b", "ab", "a.b", "ba"};
  std::uniform_int_distribution<size_t> depth(1, 3), segment(0, segments.size() - 1);
  std::string target;
  for (size_t i = depth(random); i > 0; --i)
    target += (target.empty() ? "" : "/") + segments[segment(random)];
  return target;
}

}  // namespace

TEST_CASE("HeldTargets answers as targets_conflict does against every held target", "[targets]") {
  std::mt19937 random(20261122);
  int conflicts = 0, disjoint = 0;
  for (int round = 0; round < 200; ++round) {
    hub::HeldTargets held;
    std::vector<std::string> targets;
    std::uniform_int_distribution<int> count(0, 6);
    for (int i = count(random); i > 0; --i) {
      targets.push_back(random_target(random));
      held.add(targets.back());
    }
    held.add("");  // holds nothing
    for (int probe = 0; probe < 20; ++probe) {
      const std::string target = random_target(random);
      bool expected = false;
      for (const auto& other : targets)
        expected = expected || targets_conflict(target, other);
      INFO("'" << target << "' against " << targets.size() << " held targets");
      CHECK(held.conflicts(target) == expected);
      (expected ? conflicts : disjoint)++;
    }
    CHECK_FALSE(held.conflicts(""));
  }
  // Both answers were asked for many times.
  CHECK(conflicts > 500);
  CHECK(disjoint > 500);
}
