// Helpers for the role and audit tests: tokens made by `tether-hub token
// create`, audit pages read back, and the CLI run with a given token.
#pragma once

#include <pwd.h>
#include <unistd.h>

#include "protocol/audit_api.hpp"
#include "world.hpp"

namespace tether::test {

// `tether-hub token create --name NAME --role ROLE [--agents PATTERNS]`: the token.
inline std::string create_token(const World& world, const std::string& name,
                                const std::string& role, const std::string& agents = "") {
  std::vector<std::string> args = {"token",  "create", "--name",     name,
                                   "--role", role,     "--data-dir", world.data_dir};
  if (!agents.empty()) {
    args.push_back("--agents");
    args.push_back(agents);
  }
  return hub_command(args);
}

// GET /api/v1/audit + `query` with `op`'s token, decoded (REQUIREs 200).
inline core::Co<protocol::AuditPage> audit_page(Operator& op, std::string query) {
  auto reply = co_await op.request("GET", "/api/v1/audit" + query);
  REQUIRE(reply.ok());
  INFO(reply->body);
  REQUIRE(reply->status == 200);
  auto page = protocol::decode_audit_page(reply->body);
  REQUIRE(page.ok());
  co_return std::move(*page);
}

// The entries of `page` with this action and outcome (and target, if given).
inline std::vector<protocol::AuditEntry> entries_of(const protocol::AuditPage& page,
                                                    const std::string& action,
                                                    const std::string& outcome,
                                                    const std::string& target = "") {
  std::vector<protocol::AuditEntry> found;
  for (const auto& entry : page.entries) {
    if (entry.action == action && entry.outcome == outcome &&
        (target.empty() || entry.target == target)) {
      found.push_back(entry);
    }
  }
  return found;
}

// The environment for `tether` with this token.
inline std::vector<std::string> cli_environment(const World& world, const std::string& token,
                                                const std::string& file) {
  return {"TETHER_HUB_URL=" + world.hub.url(),
          "TETHER_TOKEN_FILE=" + world.dir.write_secret(file, token)};
}

// "local:" and the user running the tests: the actor of tether-hub commands.
inline std::string local_actor_name() {
  const passwd* entry = ::getpwuid(::getuid());
  return "local:" + std::string(entry ? entry->pw_name : "uid " + std::to_string(::getuid()));
}

}  // namespace tether::test
