// The audit trail: its wire shapes (protocol/audit_api.hpp), and the
// append-only table the hub keeps it in (hub/audit_log.hpp).
#include <catch2/catch.hpp>

#include "hub/audit_log.hpp"
#include "protocol/audit_api.hpp"
#include "support.hpp"

using namespace tether;

TEST_CASE("UTC times normalize to the fixed form the hub stores", "[audit]") {
  const std::pair<const char*, const char*> cases[] = {
      {"2026-11-22", "2026-11-22T00:00:00.000Z"},
      {"2026-11-22T05:12:00Z", "2026-11-22T05:12:00.000Z"},
      {"2026-11-22T05:12:00.1Z", "2026-11-22T05:12:00.100Z"},
      {"2026-11-22T05:12:00.123456789Z", "2026-11-22T05:12:00.123Z"},
  };
  for (const auto& [given, normal] : cases) {
    INFO(given);
    auto got = protocol::normalize_utc(given, "since");
    REQUIRE(got.ok());
    CHECK(*got == normal);
  }
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-22T05:12:00", "2026-11-22 05:12",
                          "2026-11-22T25:00:00Z", "2026-11-22T05:12:00.Z",
                          "2026-11-22T05:12:00.1234567890Z", "2026-11-22T05:12:00+01:00"}) {
    INFO(bad);
    auto refused = protocol::normalize_utc(bad, "until");
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().message, Catch::StartsWith("until: expected a UTC time"));
  }
}

TEST_CASE("audit queries: filters and paging decode; bad parameters name themselves", "[audit]") {
  auto defaults = protocol::decode_audit_query({});
  REQUIRE(defaults.ok());
  CHECK(defaults->limit == protocol::kDefaultAuditPage);
  CHECK(defaults->after == 0);
  CHECK(protocol::audit_query_parameters(*defaults).empty());

  auto full = protocol::decode_audit_query({{"actor", "ci"},
                                            {"action", "task.submit"},
                                            {"target", "t-1"},
                                            {"since", "2026-11-22"},
                                            {"until", "2026-11-23T00:00:00Z"},
                                            {"after", "41"},
                                            {"limit", "1000"}});
  REQUIRE(full.ok());
  CHECK(full->actor == "ci");
  CHECK(full->since == "2026-11-22T00:00:00.000Z");
  CHECK(full->until == "2026-11-23T00:00:00.000Z");
  CHECK(full->after == 41);
  CHECK(full->limit == 1000);
  // What the CLI sends is what the hub reads back.
  std::map<std::string, std::string> sent;
  for (const auto& [name, value] : protocol::audit_query_parameters(*full))
    sent[name] = value;
  auto again = protocol::decode_audit_query(sent);
  REQUIRE(again.ok());
  CHECK(again->target == "t-1");
  CHECK(again->until == full->until);
  CHECK(again->limit == 1000);

  const std::pair<std::map<std::string, std::string>, const char*> bad[] = {
      {{{"actr", "ci"}}, "actr: unknown parameter"},
      {{{"limit", "0"}}, "limit: expected 1 to 1000"},
      {{{"limit", "1001"}}, "limit: expected 1 to 1000"},
      {{{"after", "-1"}}, "after: expected an entry id"},
      {{{"since", "last week"}}, "since: expected a UTC time"},
  };
  for (const auto& [parameters, message] : bad) {
    INFO(message);
    auto refused = protocol::decode_audit_query(parameters);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "invalid_field");
    CHECK_THAT(refused.error().message, Catch::StartsWith(message));
  }
}

TEST_CASE("an audit page encodes and decodes; a mistyped one names the field", "[audit]") {
  protocol::AuditPage page;
  page.entries.push_back({7, "2026-11-22T05:12:00.123Z", "ci", "operator", "127.0.0.1",
                          "task.submit", "t-1", "allowed", "", R"({"agent":"web-1"})"});
  page.entries.push_back({8, "2026-11-22T05:12:01.000Z", "dash", "viewer", "::1", "task.cancel",
                          "t-1", "refused", "token 'dash' has role viewer", "{}"});
  page.next = 8;
  const std::string body = protocol::encode_audit_page(page);
  CHECK_THAT(body, Catch::Contains(R"("reason":null,"detail":{"agent":"web-1"})") &&
                       Catch::EndsWith(R"("next":8})"));
  auto decoded = protocol::decode_audit_page(body);
  REQUIRE(decoded.ok());
  REQUIRE(decoded->entries.size() == 2);
  CHECK(decoded->entries[0].detail_json == R"({"agent":"web-1"})");
  CHECK(decoded->entries[0].reason.empty());
  CHECK(decoded->entries[1].reason == "token 'dash' has role viewer");
  CHECK(decoded->entries[1].source == "::1");
  CHECK(decoded->next == 8);
  page.next.reset();
  CHECK_FALSE(protocol::decode_audit_page(protocol::encode_audit_page(page))->next);

  auto mistyped = protocol::decode_audit_page(R"({"entries":[{"id":"7"}],"next":null})");
  REQUIRE_FALSE(mistyped.ok());
  CHECK_THAT(mistyped.error().message, Catch::StartsWith("answer.entries[0].id"));
  CHECK_FALSE(protocol::decode_audit_page(R"({"next":null})").ok());
}

TEST_CASE("AuditLog: entries filtered and paged by id; rows cannot change", "[audit]") {
  test::TempDir dir{"tether-audit"};
  auto store = test::open_test_hub_store(dir.path);
  hub::AuditLog audit(*store);
  const hub::AuditActor ci{"ci", "operator", "10.0.0.5"};
  const hub::AuditActor dash{"dash", "viewer", "10.0.0.6"};
  for (int i = 1; i <= 5; ++i)
    audit.record(ci, {"task.submit", "t-" + std::to_string(i), R"({"agent":"web-1"})", {}});
  audit.record(dash, {"task.cancel", "t-2", R"({"method":"POST"})", "viewers may not cancel"});
  audit.record(ci, {"task.read", "t-\xff", "{}", "refused"});  // bytes from a path
  REQUIRE(store->commit().ok());

  protocol::AuditQuery query;
  query.actor = "ci";
  query.action = "task.submit";
  query.limit = 2;
  auto first = audit.read(query);
  REQUIRE(first.entries.size() == 2);
  CHECK(first.entries[0].target == "t-1");
  CHECK(first.entries[0].source == "10.0.0.5");
  CHECK(first.entries[0].outcome == "allowed");
  CHECK(first.entries[0].detail_json == R"({"agent":"web-1"})");
  REQUIRE(first.next);
  query.after = *first.next;
  auto second = audit.read(query);
  CHECK(second.entries.size() == 2);
  CHECK(second.entries[0].target == "t-3");
  query.after = *second.next;
  auto last = audit.read(query);
  REQUIRE(last.entries.size() == 1);
  CHECK_FALSE(last.next);  // exactly the rest: no empty page follows

  protocol::AuditQuery refusals;
  refusals.target = "t-2";
  auto by_target = audit.read(refusals);
  REQUIRE(by_target.entries.size() == 2);
  CHECK(by_target.entries[1].outcome == "refused");
  CHECK(by_target.entries[1].reason == "viewers may not cancel");
  CHECK(by_target.entries[1].actor == "dash");
  protocol::AuditQuery in_future;
  in_future.since = "2999-01-01T00:00:00.000Z";
  CHECK(audit.read(in_future).entries.empty());
  protocol::AuditQuery until_past;
  until_past.until = "2000-01-01T00:00:00.000Z";
  CHECK(audit.read(until_past).entries.empty());
  protocol::AuditQuery odd;
  odd.action = "task.read";
  CHECK(audit.read(odd).entries.at(0).target == "t-?");  // stored as valid UTF-8

  auto& database = store->database();
  CHECK_THROWS_WITH(database.exec("UPDATE audit_log SET actor = 'someone else'"),
                    Catch::Contains("append-only"));
  CHECK_THROWS_WITH(database.exec("DELETE FROM audit_log WHERE id = 1"),
                    Catch::Contains("append-only"));
  CHECK(database.execAndGet("SELECT count(*) FROM audit_log WHERE actor = 'ci'").getInt() == 6);
}
