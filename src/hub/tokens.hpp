// Tokens: agents and operators authenticate with bearer tokens.
//
// A token is shown once, when it is made; the hub stores only its SHA-256.
// Comparisons of digests use CRYPTO_memcmp, so their timing says nothing
// about how much of a guess was right.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "hub/hub_store.hpp"

namespace tether::hub {

// "tta_" (agent) or "tto_" (operator) and 43 characters of base64url: 256
// random bits.
std::string generate_token(std::string_view prefix);
std::string token_digest(std::string_view token);
// `bytes` random bytes as lowercase hex (ids).
std::string random_hex(size_t bytes);
bool digests_equal(std::string_view a, std::string_view b);

// The token from an "Authorization: Bearer <token>" header, or empty.
std::string bearer_token(std::string_view authorization);

enum class AuthOutcome { kAllowed, kUnauthorized, kForbidden };

class TokenStore {
 public:
  explicit TokenStore(HubStore& store) : store_(store) {}

  // Registers an agent and returns its token. Fails if the name is taken.
  Result<std::string> add_agent(const std::string& name);
  // Replaces an agent's token; the old one stops working at once.
  Result<std::string> rotate_agent(const std::string& name);
  Result<std::string> add_admin_token();

  // For /api/v1/agents/{agent}/...: allowed only with that agent's token;
  // forbidden with another agent's (or an admin's) token.
  AuthOutcome check_agent(const std::string& agent, std::string_view authorization);
  // The agent a token belongs to, if any.
  std::optional<std::string> agent_of(std::string_view authorization);
  // Operator API: allowed with an admin token; forbidden with an agent's.
  AuthOutcome check_admin(std::string_view authorization);
  // For a forbidden answer to an agent route: why, naming whose token it
  // is ("an operator (admin) token", "agent edge-2's token"). The caller
  // holds that token already, so this tells it nothing it could not know,
  // and it tells an agent started with the wrong file what to fix.
  std::string forbidden_agent_message(const std::string& agent, std::string_view authorization);

  bool agent_exists(const std::string& name);
  std::vector<std::string> agent_names();

 private:
  HubStore& store_;
};

}  // namespace tether::hub
