// Operator roles: the permission table, agent patterns (fnmatch), token
// names, and principals as TokenStore resolves them from hub.db.
#include <catch2/catch.hpp>

#include "hub/agent_directory.hpp"
#include "hub/operator_roles.hpp"
#include "hub/tokens.hpp"
#include "support.hpp"

using namespace tether;
using hub::Permission;
using hub::Principal;
using hub::Role;

namespace {

Principal operator_on(std::vector<std::string> patterns) {
  return Principal{"ops", Role::kOperator, std::move(patterns)};
}

}  // namespace

TEST_CASE("the permission table: admin all, operator read/submit/cancel, viewer read", "[roles]") {
  struct Row {
    Permission permission;
    bool admin, operator_, viewer;
  };
  const Row table[] = {
      {Permission::kRead, true, true, true},        {Permission::kSubmit, true, true, false},
      {Permission::kCancel, true, true, false},     {Permission::kRemoveAgent, true, false, false},
      {Permission::kReadAudit, true, false, false},
  };
  for (const auto& row : table) {
    INFO(hub::to_string(row.permission));
    CHECK(hub::role_allows(Role::kAdmin, row.permission) == row.admin);
    CHECK(hub::role_allows(Role::kOperator, row.permission) == row.operator_);
    CHECK(hub::role_allows(Role::kViewer, row.permission) == row.viewer);
    const Principal viewer{"dash", Role::kViewer, {}};
    CHECK(viewer.refusal(row.permission).has_value() == !row.viewer);
  }
  for (Role role : {Role::kAdmin, Role::kOperator, Role::kViewer})
    CHECK(hub::parse_role(hub::to_string(role)) == role);
  CHECK_FALSE(hub::parse_role("Admin"));
  CHECK_FALSE(hub::parse_role(""));
}

TEST_CASE("refusals name the token, its role and the roles that may", "[roles]") {
  const Principal viewer{"dash", Role::kViewer, {}};
  const auto submit = viewer.refusal(Permission::kSubmit);
  REQUIRE(submit);
  CHECK_THAT(*submit, Catch::Contains("token 'dash' has role viewer") &&
                          Catch::Contains("may not submit") &&
                          Catch::Contains("needs role admin or operator"));
  const auto audit = operator_on({}).refusal(Permission::kReadAudit);
  REQUIRE(audit);
  CHECK_THAT(*audit, Catch::Contains("read the audit trail") && Catch::EndsWith("role admin)"));
  CHECK_FALSE(viewer.refusal(Permission::kRead));
  CHECK(viewer.may_reach_agent("anything"));
  CHECK_FALSE(viewer.sees_env_values());
  CHECK(operator_on({}).sees_env_values());
}

TEST_CASE("agent patterns: shell globs over the whole name, any one matching", "[roles]") {
  const auto ops = operator_on({"web-*", "db-[12]", "cache-?"});
  CHECK(ops.may_reach_agent("web-1"));
  CHECK(ops.may_reach_agent("web-"));
  CHECK(ops.may_reach_agent("db-2"));
  CHECK(ops.may_reach_agent("cache-a"));
  CHECK_FALSE(ops.may_reach_agent("db-3"));
  CHECK_FALSE(ops.may_reach_agent("cache-ab"));
  CHECK_FALSE(ops.may_reach_agent("xweb-1"));  // a whole-name match, not a substring
  CHECK_FALSE(ops.may_reach_agent("web"));
  CHECK(operator_on({"db-[!1]"}).may_reach_agent("db-2"));
  CHECK_FALSE(operator_on({"db-[!1]"}).may_reach_agent("db-1"));
  // No patterns: every agent. Admins are never limited.
  CHECK(operator_on({}).may_reach_agent("db-3"));
  CHECK(Principal{"root", Role::kAdmin, {"web-*"}}.may_reach_agent("db-3"));

  const auto why = ops.agent_refusal("db-3", "agent 'db-3'");
  REQUIRE(why);
  CHECK(*why ==
        "token 'ops' (role operator) may only act on agents matching web-*,db-[12],cache-?; "
        "agent 'db-3' matches none of them");
  CHECK_FALSE(ops.agent_refusal("web-9", "agent 'web-9'"));
}

TEST_CASE("agent patterns parse from the comma list; bad ones name the field", "[roles]") {
  auto two = hub::parse_agent_patterns("web-*,db-1");
  REQUIRE(two.ok());
  CHECK(*two == std::vector<std::string>{"web-*", "db-1"});
  CHECK(hub::format_agent_patterns(*two) == "web-*,db-1");
  for (const char* bad : {"", ",", "web-*,", "web *", "a,,b", "web/1", "x;y"}) {
    INFO(bad);
    auto refused = hub::parse_agent_patterns(bad);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "invalid_field");
    CHECK_THAT(refused.error().message, Catch::StartsWith("agents: pattern '"));
  }
  std::string many;
  for (int i = 0; i < 33; ++i)
    many += (many.empty() ? "" : ",") + std::string("a") + std::to_string(i);
  auto too_many = hub::parse_agent_patterns(many);
  REQUIRE_FALSE(too_many.ok());
  CHECK_THAT(too_many.error().message, Catch::Contains("33 patterns; at most 32"));
  CHECK(hub::parse_agent_patterns(std::string(128, 'a')).ok());
  CHECK_FALSE(hub::parse_agent_patterns(std::string(129, 'a')).ok());
}

TEST_CASE("token names: 1 to 64 of A-Z a-z 0-9 . _ -, never the form of an id", "[roles]") {
  for (const char* good : {"ci", "ci-web.2_x", "op-notanid", "op-0123456789abc"}) {
    INFO(good);
    CHECK(hub::check_token_name(good).ok());
  }
  CHECK(hub::check_token_name(std::string(64, 'n')).ok());
  for (const std::string& bad : {std::string(), std::string(65, 'n'), std::string("a b"),
                                 std::string("ci:web"), std::string("op-0123456789ab")}) {
    INFO(bad);
    auto refused = hub::check_token_name(bad);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == "invalid_name");
    CHECK_THAT(refused.error().message, Catch::StartsWith("name: '"));
  }
}

TEST_CASE("TokenStore: operator tokens resolve to principals until revoked", "[roles]") {
  test::TempDir dir{"tether-roles"};
  auto store = test::open_test_hub_store(dir.path);
  hub::AgentDirectory agents(*store);
  hub::TokenStore tokens(*store, agents);
  auto made = tokens.add_operator_token("ci-web", Role::kOperator, {"web-*"});
  REQUIRE(made.ok());
  CHECK_THAT(made->token, Catch::StartsWith("tto_"));
  CHECK(made->info.id == "op-" + hub::token_digest(made->token).substr(0, 12));
  const std::string header = "Bearer " + made->token;
  auto principal = tokens.operator_principal(header);
  REQUIRE(principal);
  CHECK(principal->name == "ci-web");
  CHECK(principal->role == Role::kOperator);
  CHECK(principal->agent_patterns == std::vector<std::string>{"web-*"});
  CHECK_FALSE(tokens.why_unverified(header));
  CHECK_FALSE(tokens.operator_principal("Bearer tto_unknown"));
  CHECK_FALSE(tokens.operator_principal(""));

  // Refused input changes nothing.
  auto taken = tokens.add_operator_token("ci-web", Role::kViewer, {});
  REQUIRE_FALSE(taken.ok());
  CHECK(taken.error().code == "exists");
  auto patterned = tokens.add_operator_token("dash", Role::kViewer, {"web-*"});
  REQUIRE_FALSE(patterned.ok());
  CHECK(patterned.error().code == "invalid_field");
  CHECK(tokens.operator_tokens().size() == 1);

  auto admin = tokens.add_admin_token();
  REQUIRE(admin.ok());
  CHECK_THAT(admin->info.name, Catch::Matches("admin-[0-9a-f]{12}"));
  CHECK(tokens.operator_principal("Bearer " + admin->token)->role == Role::kAdmin);

  auto revoked = tokens.revoke_operator_token("ci-web");
  REQUIRE(revoked.ok());
  CHECK(revoked->id == made->info.id);
  CHECK_FALSE(tokens.operator_principal(header));
  CHECK_THAT(*tokens.why_unverified(header),
             Catch::StartsWith("operator token 'ci-web' was revoked at "));
  auto again = tokens.revoke_operator_token(made->info.id);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == "already_revoked");
  auto unknown = tokens.revoke_operator_token("nobody");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().code == "not_found");
  const auto listed = tokens.operator_tokens();
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].name == "ci-web");
  CHECK_FALSE(listed[0].revoked_at.empty());
  // The name stays taken after revocation: audit entries stay unambiguous.
  CHECK(tokens.add_operator_token("ci-web", Role::kViewer, {}).error().code == "exists");
}
